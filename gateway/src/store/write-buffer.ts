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
