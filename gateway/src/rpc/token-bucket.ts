// SPEC §7 rate limit: starts full, refills at `rate` per second, holds 2 s worth.
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly capacity: number;
  private readonly perMs: number;

  constructor(rate: number, now: number) {
    this.capacity = rate * 2;
    this.perMs = rate / 1000;
    this.tokens = this.capacity;
    this.last = now;
  }

  take(now: number): boolean {
    if (this.tokens < 1) {
      const refill = (now - this.last) * this.perMs;
      this.last = now;
      this.tokens = Math.min(this.capacity, this.tokens + refill);
      if (this.tokens < 1) return false;
    } else if (this.tokens < this.capacity) {
      this.tokens = Math.min(this.capacity, this.tokens + (now - this.last) * this.perMs);
      this.last = now;
    } else {
      this.last = now;
    }
    this.tokens -= 1;
    return true;
  }
}
