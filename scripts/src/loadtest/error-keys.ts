// The keys a load counts its errors by: a refused upgrade by its HTTP status, a network error by
// its code (`ECONNREFUSED`), else `connect`; a failed call by its JSON-RPC code, `timeout`,
// `closed` or `send` (and `unanswered` at the end of a drain).
import { CallAbortedError, ConnectRefusedError, RpcCallError } from '@agentgate/shared';

export function connectErrorKey(err: unknown): string {
  if (err instanceof ConnectRefusedError) return String(err.status);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : 'connect';
}

export function callErrorKey(err: unknown): string {
  if (err instanceof RpcCallError) return String(err.code);
  if (err instanceof CallAbortedError) return err.reason === 'timeout' ? 'timeout' : 'closed';
  return 'send';
}

/** Whether `key` counts a failed connection attempt (connectErrorKey's keys). */
export function isConnectErrorKey(key: string): boolean {
  return key === 'connect' || /^\d{3}$/.test(key) || /^E[A-Z]+$/.test(key);
}
