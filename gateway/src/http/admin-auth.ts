// `/debug/*` is for operators (SPEC §3): without an admin token the routes do not exist (404); with
// one, a request must carry it as a bearer token (compared in constant time).
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export class AdminAuth {
  private readonly want: Buffer | undefined;

  constructor(token: string | undefined) {
    this.want = token ? Buffer.from(token) : undefined;
  }

  get configured(): boolean {
    return this.want !== undefined;
  }

  /** Whether `req` carries the admin bearer token. */
  allows(req: IncomingMessage): boolean {
    const want = this.want;
    if (!want) return false;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (!m) return false;
    const got = Buffer.from(m[1]!.trim());
    return got.length === want.length && timingSafeEqual(got, want);
  }
}
