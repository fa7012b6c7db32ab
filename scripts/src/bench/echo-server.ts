// The bench's ceiling (SPEC §9): a bare `ws` server that parses each frame and answers it like the
// gateway would (`UpdateStats` → {reportInterval}, anything else → {}), with no auth, no database.
// Run as its own process: `node scripts/dist/bench/echo-server.js [--listen 127.0.0.1:0]`; it
// prints a `"msg":"listening"` JSON line with the URL, like the gateway. For the load test's tests
// it can also answer errors (`--error-code -32003 [--error-every K]`), never answer (`--silent on`,
// a hung server) or refuse upgrades (`--refuse 401`).
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { parseFlags } from '@agentgate/gateway/config';
import { RPC_PATH } from '@agentgate/shared';
import { type RawData, WebSocketServer } from 'ws';

interface EchoOptions {
  host: string;
  port: number;
  errorCode: number | undefined;
  errorEvery: number;
  refuse: number | undefined;
  silent: boolean;
}

function parseArgs(argv: string[]): EchoOptions {
  const flags = parseFlags(argv, ['--listen', '--error-code', '--error-every', '--refuse', '--silent']);
  const listen = /^(.+):(\d{1,5})$/.exec(flags.get('--listen') ?? '127.0.0.1:0');
  if (!listen) throw new Error('invalid --listen: expected host:port');
  const errorCode = flags.has('--error-code') ? Number(flags.get('--error-code')) : undefined;
  const refuse = flags.has('--refuse') ? Number(flags.get('--refuse')) : undefined;
  return {
    host: listen[1]!,
    port: Number(listen[2]),
    errorCode,
    errorEvery: Number(flags.get('--error-every') ?? 1),
    refuse,
    silent: flags.get('--silent') === 'on',
  };
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

const opts = parseArgs(process.argv.slice(2));
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
