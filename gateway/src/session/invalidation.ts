// SPEC §8 push invalidation, the session side: a NOTIFY on agentgate_identity names ids (a
// workspace, an owner, a template, an agent, or all); the registry maps them to this process's
// sessions, which refresh at once through the batched read (the RefreshBatcher folds a burst into
// one statement). After a lost LISTEN, and on {"all": true}, every session refreshes, fed to the
// batcher in chunks of its largest statement, spread over a few seconds: no query storm. A resync
// asked for while one is pending is folded into one more resync after it, so a flood of
// {"all": true} (anyone may send it) costs one resync per spread, not one per payload.
import type { Clock, TimerHandle } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { GatewayMetrics } from '../ops/metrics.js';
import type { IdentitySink } from '../store/identity-listener.js';
import type { SessionRegistry } from './registry.js';
import type { Session } from './session.js';

/** Payload key → the registry index of the sessions it names. */
const INDEXES = {
  workspace_id: 'byWorkspace',
  owner_id: 'byOwner',
  template_id: 'byTemplate',
  agent_id: 'byAgent',
} as const;
type IdentityKey = keyof typeof INDEXES;
const KEYS = Object.keys(INDEXES) as IdentityKey[];

export type IdentityChange = { all: true } | { all: false; ids: { key: IdentityKey; id: string }[] };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * `{"all": true}`, or an object naming one or more of workspace_id, owner_id, template_id and
 * agent_id (UUID strings; other keys are ignored). Anything else is undefined (malformed).
 */
export function parseIdentityPayload(raw: string): IdentityChange | undefined {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (o['all'] === true) return { all: true };
  const ids: { key: IdentityKey; id: string }[] = [];
  for (const key of KEYS) {
    if (!(key in o)) continue;
    const id = o[key];
    if (typeof id !== 'string' || !UUID.test(id)) return undefined;
    ids.push({ key, id: id.toLowerCase() });
  }
  return ids.length > 0 ? { all: false, ids } : undefined;
}

export interface InvalidationOptions {
  registry: SessionRegistry<Session>;
  clock: Clock;
  log: Logger;
  metrics: GatewayMetrics;
  /** Sessions per refresh statement (the RefreshBatcher's largest batch): the chunk of a resync. */
  chunkSize: number;
  /** A resync (lost LISTEN, {"all": true}) is spread over this long. */
  resyncSpreadMs?: number;
  /** Between the chunks of one large push (a template rename over thousands of sessions). */
  pushChunkGapMs?: number;
  /** A notification is remembered this long for sessions that were still connecting when it came. */
  rememberMs?: number;
}

/** Malformed payloads are logged at most this often (the rest are counted). */
const MALFORMED_LOG_EVERY_MS = 10_000;
/** {"all": true} is logged at info at most this often; the rest are counted in one line after. */
const RESYNC_LOG_EVERY_MS = 10_000;
/** What a warning quotes of a malformed payload. */
const QUOTE_CHARS = 120;

export class IdentityInvalidation implements IdentitySink {
  private readonly resyncSpreadMs: number;
  private readonly pushChunkGapMs: number;
  private readonly rememberMs: number;
  /** `key:id` → when it was notified, oldest first. */
  private readonly recent = new Map<string, number>();
  private recentAll = Number.NEGATIVE_INFINITY;
  private malformedLoggedAt = Number.NEGATIVE_INFINITY;
  private malformedSuppressed = 0;
  /** A resync is pending (its chunks are still being fed to the batcher) until then. */
  private resyncPendingUntil = Number.NEGATIVE_INFINITY;
  /** Set when resyncs were folded into the pending one: one more runs when it ends. */
  private resyncAgain: TimerHandle | undefined;
  private allLoggedUntil = Number.NEGATIVE_INFINITY;
  private allSuppressed = 0;
  private allSummary: TimerHandle | undefined;

  constructor(private readonly o: InvalidationOptions) {
    this.resyncSpreadMs = o.resyncSpreadMs ?? 3000;
    this.pushChunkGapMs = o.pushChunkGapMs ?? 50;
    this.rememberMs = o.rememberMs ?? 2000;
  }

  /** One NOTIFY payload: refresh the sessions it names, at once. */
  notified(raw: string): void {
    const change = parseIdentityPayload(raw);
    const { metrics } = this.o;
    if (!change) {
      metrics.identityNotification('malformed');
      this.warnMalformed(raw);
      return;
    }
    const now = this.o.clock.now();
    if (change.all) {
      metrics.identityNotification('all');
      this.recentAll = now;
      const folded = !this.resync();
      this.logAll(now, folded);
      return;
    }
    const targets = new Set<Session>();
    for (const { key, id } of change.ids) {
      metrics.identityNotification(key);
      this.remember(`${key}:${id}`, now);
      for (const s of this.o.registry[INDEXES[key]].get(id) ?? []) targets.add(s);
    }
    if (targets.size === 0) return;
    this.o.log.debug({ change: change.ids, sessions: targets.size }, 'identity change notified');
    this.refreshChunked([...targets], this.pushChunkGapMs, 'notify');
  }

  /** LISTEN is active again after a loss: whatever changed while deaf is applied by a resync. */
  listening(first: boolean): void {
    this.o.metrics.identityListening.set(1);
    if (first) return;
    this.o.log.info({ sessions: this.o.registry.size }, 'LISTEN restored; resyncing every session');
    this.resync();
  }

  deaf(): void {
    this.o.metrics.identityListening.set(0);
  }

  /**
   * A session registered just now: its identity came from the token check, which may have read
   * before a change whose NOTIFY arrived before the session was in the registry. Refresh it.
   */
  started(session: Session): void {
    const cutoff = this.o.clock.now() - this.rememberMs;
    const s = session.subject;
    const keys = [`agent_id:${s.agentId}`, `workspace_id:${s.workspaceId}`, `owner_id:${s.ownerId}`];
    keys.push(`template_id:${s.templateId}`);
    const named = (k: string) => (this.recent.get(k) ?? Number.NEGATIVE_INFINITY) >= cutoff;
    if (this.recentAll >= cutoff || (this.recent.size > 0 && keys.some(named))) session.refreshIn(0);
  }

  /**
   * Every session, in chunks of one statement, spread over resyncSpreadMs. While one is pending,
   * a resync is folded (returns false): one more resync follows the pending one, so a session
   * whose read went out before this request still reads again.
   */
  private resync(): boolean {
    const { clock } = this.o;
    const now = clock.now();
    if (now < this.resyncPendingUntil) {
      if (this.resyncAgain === undefined) {
        this.resyncAgain = clock.setTimeout(
          () => {
            this.resyncAgain = undefined;
            this.startResync();
          },
          this.resyncPendingUntil - now,
          'resync_again',
        );
        this.resyncAgain.unref?.();
      }
      return false;
    }
    this.startResync();
    return true;
  }

  private startResync(): void {
    const sessions = [...this.o.registry.values()];
    const chunks = Math.ceil(sessions.length / this.o.chunkSize);
    if (chunks === 0) return;
    this.resyncPendingUntil = this.o.clock.now() + this.resyncSpreadMs;
    this.refreshChunked(sessions, this.resyncSpreadMs / chunks, 'resync');
  }

  /**
   * At most one info line per RESYNC_LOG_EVERY_MS; the requests in between are counted in one
   * line at the end of that time, so a resync sent by hand always shows (SPEC §8).
   */
  private logAll(now: number, folded: boolean): void {
    const { clock, log } = this.o;
    if (now >= this.allLoggedUntil) {
      this.allLoggedUntil = now + RESYNC_LOG_EVERY_MS;
      log.info({ sessions: this.o.registry.size, folded }, 'resync of every session requested by NOTIFY');
      return;
    }
    this.allSuppressed++;
    if (this.allSummary !== undefined) return;
    this.allSummary = clock.setTimeout(
      () => {
        this.allSummary = undefined;
        this.allLoggedUntil = clock.now() + RESYNC_LOG_EVERY_MS;
        const suppressed = this.allSuppressed;
        this.allSuppressed = 0;
        log.info(
          { sessions: this.o.registry.size, suppressed, withinMs: RESYNC_LOG_EVERY_MS },
          `suppressed ${suppressed} more resync requests by NOTIFY`,
        );
      },
      this.allLoggedUntil - now,
      'resync_log',
    );
    this.allSummary.unref?.();
  }

  private refreshChunked(sessions: Session[], gapMs: number, trigger: 'notify' | 'resync'): void {
    const { chunkSize } = this.o;
    for (let i = 0; i < sessions.length; i++) sessions[i]!.refreshIn(Math.floor(i / chunkSize) * gapMs);
    this.o.metrics.pushRefreshes(trigger, sessions.length);
  }

  private remember(key: string, now: number): void {
    this.recent.delete(key);
    this.recent.set(key, now);
    const cutoff = now - this.rememberMs;
    for (const [k, at] of this.recent) {
      if (at >= cutoff) break;
      this.recent.delete(k);
    }
  }

  private warnMalformed(raw: string): void {
    const now = this.o.clock.now();
    if (now - this.malformedLoggedAt < MALFORMED_LOG_EVERY_MS) {
      this.malformedSuppressed++;
      return;
    }
    this.malformedLoggedAt = now;
    const quoted = raw.length > QUOTE_CHARS ? `${raw.slice(0, QUOTE_CHARS)}…` : raw;
    this.o.log.warn(
      { payload: quoted, bytes: Buffer.byteLength(raw), suppressedSinceLast: this.malformedSuppressed },
      'malformed identity notification ignored',
    );
    this.malformedSuppressed = 0;
  }
}
