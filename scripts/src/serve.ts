// `agentgate serve`: the gateway's own command, in the shape of the others (an option table and a main).
export { SERVE_OPTIONS } from '@agentgate/gateway/config';
export { serveMain as main } from '@agentgate/gateway/serve';
