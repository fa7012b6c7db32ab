// The gateway's version (its package.json), for `agentgate --version` and agentgate_build_info.
import { readFileSync } from 'node:fs';

/** From gateway/src/ops and gateway/dist/ops alike, the package.json is two folders up. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
