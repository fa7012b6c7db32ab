// The per-socket state machine (Centrifuge's client.go): text frames in → router → answers out,
// in order of completion. Backpressure (SPEC §7): at most 64 unanswered requests per session,
// beyond which the socket is not read; a client that does not read its answers is closed with 4008.
import {
  CloseCode,
  CloseReason,
  type CloseCodeValue,
  MAX_UNANSWERED_PER_SESSION,
  SLOW_CONSUMER_BYTES,
} from '@agentgate/shared';
import { WebSocket } from 'ws';
import type { Clock, TimerHandle } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Session } from '../session/session.js';
import { type Answer, type Router, TokenBucket } from './router.js';

/** The part of a `ws` WebSocket the connection uses (a unit test's FakeSocket stands in for it). */
export interface AgentSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  readonly isPaused: boolean;
  send(text: string): void;
  close(code: number, reason: string): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  ping(): void;
  on(event: 'message', listener: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): unknown;
  on(event: 'close', listener: (code: number) => void): unknown;
  on(event: 'ping' | 'pong', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'close', listener: () => void): unknown;
}

/** The TCP socket under the WebSocket: answers settled together are corked into one write. */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

export interface ConnectionDeps {
  router: Router;
  clock: Clock;
  log: Logger;
  sessionRate: number;
}

/** How long a peer may take to answer our close frame before the socket is cut. */
const CLOSE_HANDSHAKE_MS = 5000;

export class AgentConnection {
  /** When the peer last sent anything (frame, ping or pong): the heartbeat reads it. */
  lastSeen: number;
  /** When the heartbeat pings this socket next (spread per socket by the heartbeat). */
  nextPingAt = 0;
  private readonly bucket: TokenBucket;
  private unanswered = 0;
  private backlog: string[] = [];
  private closing = false;
  private quiescing = false;
  private corked = false;
  private idleWaiters: (() => void)[] = [];
  private cutTimer: TimerHandle | undefined;

  constructor(
    readonly ws: AgentSocket,
    readonly session: Session,
    private readonly deps: ConnectionDeps,
    private readonly raw?: Corkable,
  ) {
    this.lastSeen = deps.clock.now();
    this.bucket = new TokenBucket(deps.sessionRate, this.lastSeen);
    session.onRevoke = () => {
      // Let the frame that found out answer -32001 first (it resolves in this turn's microtasks).
      setImmediate(() => this.close(CloseCode.NotAuthorized));
    };
  }

  /** Our close frame is out (or the socket is cut): the connection takes no more frames. */
  get isClosing(): boolean {
    return this.closing;
  }

  /** Marks the peer alive (pong, ping). */
  seen(): void {
    this.lastSeen = this.deps.clock.now();
  }

  onMessage(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    this.lastSeen = this.deps.clock.now();
    // Once our close frame is out, an answer can no longer reach the agent: a frame that arrives now
    // is neither processed nor persisted (the agent sends it again after reconnecting).
    if (this.closing) return;
    if (isBinary) {
      this.close(CloseCode.UnsupportedData);
      return;
    }
    const text = data.toString();
    if (this.unanswered >= MAX_UNANSWERED_PER_SESSION || this.backlog.length > 0) {
      this.backlog.push(text);
      return;
    }
    this.onText(text);
  }

  private onText(text: string): void {
    const { answer, requests } = this.deps.router.frame(text, this.session, this.bucket);
    this.track(answer, requests);
  }

  /** Counts `n` requests as unanswered until `p` settles; at the limit the socket is not read. */
  private track(p: Promise<Answer>, n: number): void {
    this.unanswered += n;
    if (this.unanswered >= MAX_UNANSWERED_PER_SESSION && !this.ws.isPaused) this.ws.pause();
    p.then(
      (text) => this.answered(n, text),
      // The router turns every failure into an answer; reaching this is a bug.
      (err) => {
        this.deps.log.error({ err, agentId: this.session.subject.agentId }, 'a frame could not be answered');
        this.answered(n, undefined);
      },
    );
  }

  private answered(n: number, text: Answer): void {
    this.unanswered -= n;
    this.send(text);
    if (this.unanswered < MAX_UNANSWERED_PER_SESSION) this.drainBacklog();
  }

  private drainBacklog(): void {
    while (this.backlog.length > 0 && this.unanswered < MAX_UNANSWERED_PER_SESSION) {
      this.onText(this.backlog.shift()!);
    }
    if (this.unanswered === 0 && this.backlog.length === 0) this.wakeIdle();
    if (
      !this.quiescing &&
      this.backlog.length === 0 &&
      this.unanswered < MAX_UNANSWERED_PER_SESSION &&
      this.ws.isPaused
    ) {
      this.ws.resume();
    }
  }

  private send(text: Answer): void {
    if (text === undefined || this.closing || this.ws.readyState !== WebSocket.OPEN) return;
    // Answers of one committed batch settle together: cork the TCP socket so they leave in one write.
    const raw = this.raw;
    if (raw && !this.corked) {
      this.corked = true;
      raw.cork();
      process.nextTick(() => {
        this.corked = false;
        raw.uncork();
      });
    }
    this.ws.send(text);
    if (this.ws.bufferedAmount > SLOW_CONSUMER_BYTES) {
      this.deps.log.info(
        { agentId: this.session.subject.agentId, bufferedBytes: this.ws.bufferedAmount },
        'client does not read its answers; closing with 4008',
      );
      this.close(CloseCode.SlowConsumer);
    }
  }

  /** Resolves once the socket has closed (the close handshake finished or the socket was cut). */
  closed(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => this.ws.once('close', () => resolve()));
  }

  /** Closes the socket with `code` (the session closes on the socket's close event). */
  close(code: number, reason?: string): void {
    if (this.closing) return;
    this.closing = true;
    const r = reason ?? CloseReason[code as CloseCodeValue] ?? '';
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, r);
    // The peer's close reply must be read for the handshake to end (SPEC §7): a socket paused for
    // backpressure or the drain reads again; frames it still carries are dropped (onMessage).
    if (this.ws.isPaused) this.ws.resume();
    // A peer that never answers the close handshake is cut off.
    this.cutTimer = this.deps.clock.setTimeout(
      () => {
        if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
      },
      CLOSE_HANDSHAKE_MS,
      'close_handshake',
    );
    this.cutTimer.unref?.();
  }

  /** The socket closed: no timer of this connection outlives it. */
  onClosed(): void {
    this.deps.clock.clearTimeout(this.cutTimer);
    this.wakeIdle();
  }

  /**
   * SPEC §7 shutdown drain of this socket: frames keep being read, processed and answered, and the
   * close frame goes out at the first moment when every request read so far has been answered (in
   * the same turn as the last answer, so no frame is read in between). A peer that keeps the
   * session busy is no longer read after `readForMs`, so that what it sent gets answered; after
   * `maxMs` the close goes out anyway. Resolves once the socket has closed.
   */
  closeWhenAnswered(code: number, reason: string, maxMs: number, readForMs = Math.min(1000, maxMs / 2)): Promise<void> {
    const closed = this.closed();
    if (this.closing) return closed;
    if (this.unanswered === 0 && this.backlog.length === 0) {
      this.close(code, reason);
      return closed;
    }
    const { clock } = this.deps;
    const stopReading = clock.setTimeout(
      () => {
        this.quiescing = true;
        if (!this.ws.isPaused) this.ws.pause();
      },
      readForMs,
      'drain_stop_reading',
    );
    const send = () => {
      clock.clearTimeout(stopReading);
      clock.clearTimeout(giveUp);
      this.idleWaiters = this.idleWaiters.filter((w) => w !== send);
      this.close(code, reason);
    };
    const giveUp = clock.setTimeout(send, maxMs, 'drain_give_up');
    this.idleWaiters.push(send);
    return closed;
  }

  private wakeIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }
}
