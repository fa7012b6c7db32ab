// A loopback TCP proxy in front of PostgreSQL, to take the database away from one gateway.
import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** The `postgres://` URL `url` rewritten to go through the proxy. */
  rewrite(url: string): string;
  /** Refuses new connections and resets every open one (the database is unreachable). */
  cut(): Promise<void>;
  /** Accepts connections again on the same port. */
  restore(): Promise<void>;
  /** Resets every open connection (RST) and keeps accepting new ones: a database restart, or a flaky proxy. */
  resetAll(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 5432);
  const targetHost = target.hostname;
  const open = new Set<net.Socket>();
  const make = () =>
    net.createServer((client) => {
      const upstream = net.connect(targetPort, targetHost);
      open.add(client);
      open.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        open.delete(client);
        open.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  let server = make();
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    });
  const port = await listen(0);
  const closeServer = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return {
    port,
    rewrite(url: string) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    async cut() {
      const closing = closeServer();
      for (const s of open) s.resetAndDestroy();
      open.clear();
      await closing;
    },
    resetAll() {
      const n = open.size;
      for (const s of open) s.resetAndDestroy();
      open.clear();
      return n;
    },
    async restore() {
      if (server.listening) return;
      server = make();
      await listen(port);
    },
    async close() {
      for (const s of open) s.destroy();
      if (server.listening) await closeServer();
    },
  };
}
