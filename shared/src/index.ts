export * from './protocol/codes.js';
export * from './protocol/duration.js';
export * from './protocol/schemas.js';
export * from './protocol/validate.js';
export * from './client/agent-client.js';
