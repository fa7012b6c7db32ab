// The bound of SPEC §7: frames that may wait for the database, shared by every writer and counting
// frames in a batch in flight too. When it is full, new frames are answered -32002 at once.
export class WriteBuffer {
  private used = 0;
  constructor(readonly capacity: number) {}

  tryTake(): boolean {
    if (this.used >= this.capacity) return false;
    this.used++;
    return true;
  }

  release(n = 1): void {
    this.used -= n;
  }

  get size(): number {
    return this.used;
  }
}

/** Errors after which retrying the same statement can succeed (connection, timeout, resources). */
export function isRetryable(err: unknown): boolean {
  const e = err as { code?: string; errno?: string };
  const code = String(e?.code ?? '');
  if (/^(08|53|57|58|40)/.test(code) && code.length === 5) return true;
  return /^(ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|CONNECT_TIMEOUT|CONNECTION_)/.test(code);
}
