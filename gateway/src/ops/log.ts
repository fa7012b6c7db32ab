// pino JSON lines on stdout, pretty on a terminal. Secrets never reach the output (SPEC §1):
// token-bearing fields are redacted by path, URLs are passed through redactUrl before logging.
import pino, { type Logger } from 'pino';

export type { Logger };

const REDACT_PATHS = [
  'token',
  'authToken',
  'auth_token',
  'adminToken',
  'password',
  'databaseUrl',
  'req.headers.authorization',
  'req.headers["coder-session-token"]',
  'headers.authorization',
  'headers["coder-session-token"]',
];

export function createLogger(level: string, opts: { pretty?: boolean; name?: string } = {}): Logger {
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  const base = {
    level,
    name: opts.name,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, destination: 1 } } });
  }
  return pino(base);
}
