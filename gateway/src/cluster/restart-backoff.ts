// How long the primary waits before it restarts a worker that died (SPEC §8): 1 s, doubling to
// 30 s while workers keep dying young; a worker that lived 60 s resets it. One per worker slot.

const FIRST_MS = 1000;
const MAX_MS = 30_000;
const HEALTHY_AFTER_MS = 60_000;

export class RestartBackoff {
  private nextMs = FIRST_MS;

  /** The delay before restarting a worker that lived `livedMs`. */
  after(livedMs: number): number {
    if (livedMs >= HEALTHY_AFTER_MS) this.nextMs = FIRST_MS;
    const delay = this.nextMs;
    this.nextMs = Math.min(MAX_MS, this.nextMs * 2);
    return delay;
  }
}
