// The bench's ceiling (SPEC §9): a bare `ws` server that parses each frame and answers it like the
// gateway would (`UpdateStats` → {reportInterval}, anything else → {}), with no auth, no database.
// Run as its own process: `node scripts/dist/bench/echo-server.js [--listen 127.0.0.1:0]`; it
// prints a `"msg":"listening"` JSON line with the URL, like the gateway. For the load test's tests
// it can also answer errors (`--error-code -32003 [--error-every K]`), never answer (`--silent on`,
// a hung server) or refuse upgrades (`--refuse 401`). `--help` lists the options.
import { realpathSync } from 'node:fs';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { type OptionTable, parse, UsageError, usage, wantsHelp } from '@agentgate/gateway/options';
import { RPC_PATH } from '@agentgate/shared';
import { type RawData, WebSocketServer } from 'ws';
import { nodeArgs, type ServerProcess, startServer } from '../lab/process.js';

export const ECHO_OPTIONS = {
  listen: {
    flag: '--listen',
    kind: 'listen',
    default: '127.0.0.1:0',
    help: 'where to listen; port 0 picks a free one',
  },
  errorCode: {
    flag: '--error-code',
    kind: 'int',
    arg: 'CODE',
    help: 'answer requests with this JSON-RPC error code instead of a result',
  },
  errorEvery: {
    flag: '--error-every',
    kind: 'int',
    min: 1,
    default: '1',
    arg: 'K',
    help: 'with --error-code: only every K-th request errs',
  },
  refuse: {
    flag: '--refuse',
    kind: 'int',
    min: 100,
    max: 599,
    arg: 'STATUS',
    help: 'refuse every upgrade with this HTTP status',
  },
  silent: { flag: '--silent', kind: 'onoff', default: 'off', help: 'on = never answer (a hung server)' },
} as const satisfies OptionTable;

interface EchoOptions {
  host: string;
  port: number;
  errorCode: number | undefined;
  errorEvery: number;
  refuse: number | undefined;
  silent: boolean;
}

function parseArgs(argv: string[]): EchoOptions {
  // The echo server is configured by flags only: no environment.
  const { listen, ...o } = parse(ECHO_OPTIONS, argv, {});
  return { host: listen.host, port: listen.port, ...o };
}

const REPORT_INTERVAL = { reportInterval: '30s' };

function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ message });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function startEchoServer(opts: EchoOptions): Promise<{ server: http.Server; wss: WebSocketServer }> {
  let requests = 0;
  const answer = (msg: unknown): object | undefined => {
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      return { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'invalid request' } };
    }
    const req = msg as { id?: unknown; method?: unknown };
    if (req.id === undefined) return undefined; // a notification
    requests++;
    if (opts.errorCode !== undefined && requests % opts.errorEvery === 0) {
      return { jsonrpc: '2.0', id: req.id, error: { code: opts.errorCode, message: 'echo server error' } };
    }
    return { jsonrpc: '2.0', id: req.id, result: req.method === 'UpdateStats' ? REPORT_INTERVAL : {} };
  };
  const onMessage = (data: RawData): string | undefined => {
    let msg: unknown;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } });
    }
    if (Array.isArray(msg)) {
      const out = msg.map(answer).filter((x) => x !== undefined);
      return out.length ? JSON.stringify(out) : undefined;
    }
    const out = answer(msg);
    return out && JSON.stringify(out);
  };

  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const server = http.createServer((req, res) => {
    const ok = req.url === '/healthz' || req.url === '/readyz';
    res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' });
    res.end(ok ? '{"status":"ok"}' : '{"message":"not found"}');
  });
  server.on('upgrade', (req, socket, head) => {
    if ((req.url ?? '').split('?')[0] !== RPC_PATH) return refuseUpgrade(socket, 404, 'not found');
    if (opts.refuse !== undefined) return refuseUpgrade(socket, opts.refuse, 'refused by the echo server');
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => {
        if (isBinary) return ws.close(1003);
        if (opts.silent) return;
        const out = onMessage(data);
        if (out !== undefined) ws.send(out);
      });
      ws.on('error', () => {});
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve({ server, wss }));
  });
}

/** Starts this file as its own process, with `flags`: the bench's and the load test's tests' echo server. */
export function startEchoProcess(flags: string[] = []): Promise<ServerProcess> {
  return startServer('echo server', [...nodeArgs(import.meta.url), ...flags]);
}

/** Runs the echo server until SIGTERM/SIGINT; prints usage errors and --help itself. */
async function runEchoServer(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) {
    const program = 'node scripts/dist/bench/echo-server.js';
    process.stdout.write(usage('', ECHO_OPTIONS, { program, summary: "The bench's ceiling: a bare ws server." }));
    return;
  }
  let opts: EchoOptions;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`echo-server: ${e.message}\n`);
    process.exitCode = 2;
    return;
  }
  const { server, wss } = await startEchoServer(opts);
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  process.stdout.write(
    `${JSON.stringify({ level: 30, time: Date.now(), msg: 'listening', url: `ws://${opts.host}:${port}${RPC_PATH}` })}\n`,
  );
  const stop = () => {
    for (const ws of wss.clients) ws.terminate();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// Started as a program (not imported for its option table).
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  await runEchoServer(process.argv.slice(2));
}
