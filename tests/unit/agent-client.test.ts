// The agent SDK against small real `ws` servers on loopback: a malformed answer rejects only its
// own call (it used to throw out of the message handler and end the agent process), and agents
// that share one token and replace each other with 4009 back off instead of reconnecting in a loop.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { AgentClient, BadAnswerError, CloseCode, RpcCallError } from '@agentgate/shared';
import { type WebSocket, WebSocketServer } from 'ws';
import { sleep, withTimeout } from '../helpers/wait.ts';

interface TestServer {
  url: string;
  wss: WebSocketServer;
  close(): Promise<void>;
}

async function listen(onConnection: (ws: WebSocket, token: string) => void): Promise<TestServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  wss.on('connection', (ws, req) => onConnection(ws, String(req.headers['coder-session-token'] ?? '')));
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/api/v2/workspaceagents/me/rpc`,
    wss,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}

const servers: TestServer[] = [];
const clients: AgentClient[] = [];
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

describe('AgentClient: answers it cannot read', () => {
  /** Frames the server sends for the next request, given its id; a request with none queued is answered `{}`. */
  const script: ((id: unknown) => string[])[] = [];

  async function connected(): Promise<AgentClient> {
    const server = await listen((ws) => {
      ws.on('message', (data) => {
        const req = JSON.parse(data.toString()) as { id: unknown };
        const frames = script.shift()?.(req.id) ?? [JSON.stringify({ jsonrpc: '2.0', id: req.id, result: {} })];
        for (const f of frames) ws.send(f);
      });
    });
    servers.push(server);
    const c = new AgentClient({ url: server.url, token: 't', reconnect: false, requestTimeoutMs: 10_000 });
    clients.push(c);
    await c.connect();
    return c;
  }

  test('a malformed answer rejects that one call with BadAnswerError; the socket and later calls go on', async () => {
    const c = await connected();
    const cases: { answer: (id: unknown) => unknown; send: () => Promise<unknown>; problem: RegExp }[] = [
      // The answer that crashed an agent: `error: null` (TypeError: Cannot read properties of null).
      {
        answer: (id) => ({ jsonrpc: '2.0', id, error: null }),
        send: () => c.call('X'),
        problem: /error is not an object/,
      },
      {
        answer: (id) => ({ jsonrpc: '2.0', id, error: 'boom' }),
        send: () => c.call('X'),
        problem: /error is not an object/,
      },
      {
        answer: (id) => ({ jsonrpc: '2.0', id, error: [] }),
        send: () => c.call('X'),
        problem: /error is not an object/,
      },
      {
        answer: (id) => ({ jsonrpc: '2.0', id, error: { code: '-32000', message: 'm' } }),
        send: () => c.call('X'),
        problem: /error\.code is not an integer/,
      },
      {
        answer: (id) => ({ jsonrpc: '2.0', id, error: { code: -32000 } }),
        send: () => c.call('X'),
        problem: /error\.message is not a string/,
      },
      { answer: (id) => ({ jsonrpc: '2.0', id }), send: () => c.call('X'), problem: /neither result nor error/ },
      {
        answer: (id) => ({ jsonrpc: '2.0', id, result: {}, error: { code: 1, message: 'm' } }),
        send: () => c.call('X'),
        problem: /both result and error/,
      },
      { answer: (id) => ({ id, result: {} }), send: () => c.call('X'), problem: /jsonrpc is not "2.0"/ },
      {
        answer: (id) => [{ jsonrpc: '2.0', id, error: null }],
        send: () => c.call('X'),
        problem: /error is not an object/,
      },
      // Typed calls check their result too: the caller reads `reportInterval` from it.
      {
        answer: (id) => ({ jsonrpc: '2.0', id, result: null }),
        send: () => c.updateStats(),
        problem: /^UpdateStats: .*result/,
      },
      {
        answer: (id) => ({ jsonrpc: '2.0', id, result: { reportInterval: 30 } }),
        send: () => c.updateStats(),
        problem: /result\/reportInterval/,
      },
      {
        answer: (id) => ({ jsonrpc: '2.0', id, result: [] }),
        send: () => c.batchUpdateMetadata([]),
        problem: /^BatchUpdateMetadata: .*result/,
      },
    ];
    for (const k of cases) {
      script.push((id) => [JSON.stringify(k.answer(id))]);
      await assert.rejects(k.send(), (e: unknown) => {
        assert.ok(e instanceof BadAnswerError, `${String(e)} is a BadAnswerError`);
        assert.match(e.message, k.problem);
        assert.match(e.message, /malformed answer from the server/);
        return true;
      });
      assert.ok(c.connected, 'the socket stays open');
      assert.equal(c.inFlight, 0);
    }

    // Frames that answer nothing this client sent are ignored; the real answer after them settles the call.
    script.push((id) => [
      'not json',
      'null',
      '[1, null, "x", []]',
      JSON.stringify({ jsonrpc: '2.0', id: String(id), error: null }),
      JSON.stringify({ jsonrpc: '2.0', id: 999_999, error: null }),
      JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } }),
      JSON.stringify({ jsonrpc: '2.0', id, result: { reportInterval: '30s' } }),
    ]);
    assert.deepEqual(await c.updateStats(), { reportInterval: '30s' });

    // A well-formed error answer is still an RpcCallError with its code and data.
    script.push((id) => [JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32002, message: 'later', data: 1 } })]);
    await assert.rejects(c.call('X'), (e: unknown) => {
      assert.ok(e instanceof RpcCallError);
      assert.equal(e.code, -32002);
      assert.equal(e.data, 1);
      return true;
    });
    assert.deepEqual(await c.call('X'), {});
  });
});

describe('AgentClient: reconnect backoff', () => {
  test('5 agents sharing one token, replaced with 4009 by a server that keeps 4: bounded reconnects', async () => {
    // As the gateway does (SPEC §3): at most 4 sessions per agent, a newer one closes the oldest with 4009.
    const live: WebSocket[] = [];
    const open = () => live.filter((ws) => ws.readyState === ws.OPEN);
    const server = await listen((ws) => {
      live.push(ws);
      ws.on('close', () => live.splice(live.indexOf(ws), 1));
      if (open().length > 4) open()[0]!.close(CloseCode.Replaced, 'replaced');
    });
    servers.push(server);
    // The production defaults scaled down 20x (backoff 250 ms → 30 s, after 4009 from 5 s).
    const opts = { url: server.url, token: 'shared', backoffInitialMs: 10, backoffMaxMs: 1000, replacedBackoffMs: 250 };
    const agents = Array.from({ length: 5 }, () => new AgentClient(opts));
    clients.push(...agents);
    const delays: number[] = [];
    for (const a of agents) a.on('reconnecting', (_step, delayMs) => delays.push(delayMs));
    await Promise.all(agents.map((a) => a.connect()));
    const reconnects = () => agents.reduce((n, a) => n + a.reconnects, 0);

    // A window of time is what is measured here; load can only lower the count, never raise it.
    const at0 = reconnects();
    await sleep(2000);
    const at2 = reconnects();
    await sleep(1000);
    const at3 = reconnects();
    // Every reconnect here follows a 4009, so each agent's delays are at least half of 250, 500,
    // 1000, 1000, ... ms (equal jitter): at most 7 reconnects per agent in 3 s, and 3 in any 1 s.
    // Before the fix the backoff restarted at 10 ms on every open: about 100 reconnects per second.
    assert.ok(
      delays.every((d) => d >= 125),
      `after 4009 no delay under 125 ms: ${delays.filter((d) => d < 125)}`,
    );
    assert.ok(at3 - at0 <= 35, `${at3 - at0} reconnects in 3 s (at most 35)`);
    assert.ok(at3 - at2 <= 15, `${at3 - at2} reconnects in the last second (at most 15)`);
    assert.ok(at3 - at0 >= 1, 'the replaced agents do come back');
    assert.ok(open().length <= 4);
  });

  test('only a connection that stayed up resets the backoff', async () => {
    // The first 3 connections are closed as soon as they open; later ones are kept.
    let connections = 0;
    const server = await listen((ws) => {
      if (++connections <= 3) ws.close(CloseCode.GoingAway);
    });
    servers.push(server);
    const c = new AgentClient({
      url: server.url,
      token: 't',
      backoffInitialMs: 20,
      backoffMaxMs: 10_000,
      stableAfterMs: 2000,
    });
    clients.push(c);
    const steps: number[] = [];
    c.on('reconnecting', (step) => steps.push(step));
    const opened = () => withTimeout(new Promise<void>((resolve) => c.once('open', () => resolve())), 10_000, 'open');
    await c.connect();
    for (let i = 0; i < 3; i++) await opened();
    // Each of the three opened, yet the backoff grew across them.
    assert.deepEqual(steps, [1, 2, 3]);
    // The 4th stays up past stableAfterMs: its close starts the backoff over.
    await sleep(2100);
    for (const ws of server.wss.clients) ws.close(CloseCode.GoingAway);
    await opened();
    assert.deepEqual(steps, [1, 2, 3, 1]);
  });
});
