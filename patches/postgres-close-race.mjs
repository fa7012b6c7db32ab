#!/usr/bin/env node
// Run by `npm install` / `npm ci` (the root package's postinstall): fixes two faults of postgres.js
// 3.4.9 that a connection reset exposes (found by tests/e2e/chaos.test.ts, SPEC §7).
//
// 1. Acknowledged frames that were never stored. A reset connection emits 'error' on one tick and
//    'close' on a later one (after libuv closes the handle). A query the pool hands to the
//    connection in between becomes its current query, and `closed(hadError = true)` never rejects
//    it. After the reconnect, the ReadyForQuery of the new connection's startup resolves that stale
//    query with an empty result, as if it had run: an INSERT "succeeds" without a row, a SELECT
//    answers no rows (an unknown token, a deleted workspace), and a query pipelined behind it may
//    receive another query's rows. Fix: when the socket closes, every query left on the connection
//    is rejected, whatever the close says, and forgotten.
// 2. Unhandled rejections: the array-types query that a new connection runs before its first
//    query is an async call nobody awaits, and `query.cancel()` drops the promise of its cancel
//    request; a reset during either rejected with nobody listening. Fix: a failed types query
//    fails the query that waits for the connection, and `cancel()` returns its promise (the
//    gateway catches it: a cancel that cannot reach the server is of no interest).
//
// Idempotent. When postgres.js is not the version these were made for, it patches nothing and
// says so; tests/unit/postgres-close-race.test.ts then tells whether the faults are still there.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const VERSION = '3.4.9';
const MARK = '// agentgate patch';
const HUNKS = [
  {
    file: 'query.js',
    before: `    return this.canceller && (this.canceller(this), this.canceller = null)
`,
    after: `    ${MARK} (patches/postgres-close-race.mjs): return the cancel request's promise.
    const canceller = this.canceller
    this.canceller = null
    return canceller ? canceller(this) : undefined
`,
  },
  {
    file: 'connection.js',
    before: `    socket.removeAllListeners()
    socket = null

    if (initial)
      return reconnect()

    !hadError && (query || sent.length) && error(Errors.connection('CONNECTION_CLOSED', options, socket))
`,
    after: `    socket.removeAllListeners()
    socket = null

    ${MARK} (patches/postgres-close-race.mjs): a query that became current, or was pipelined, after
    // the socket's 'error' event was never rejected, and the next ReadyForQuery resolved it with no result.
    if (query || sent.length) {
      error(Errors.connection('CONNECTION_CLOSED', options, socket))
      query = null
    }

    if (initial)
      return reconnect()
`,
  },
  {
    file: 'connection.js',
    before: `        return fetchArrayTypes()
`,
    after: `        ${MARK} (patches/postgres-close-race.mjs): nobody awaited this call.
        return fetchArrayTypes().catch(errored)
`,
  },
];

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkgDir = join(root, 'node_modules', 'postgres');
if (!existsSync(join(pkgDir, 'package.json'))) process.exit(0); // not installed (yet)
const { version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
if (version !== VERSION) {
  console.warn(
    `patches/postgres-close-race.mjs: postgres ${version} is not ${VERSION}; not patched (check the faults)`,
  );
  process.exit(0);
}
let patched = 0;
for (const flavour of ['src', 'cjs/src', 'cf/src']) {
  for (const name of new Set(HUNKS.map((h) => h.file))) {
    const file = join(pkgDir, flavour, name);
    if (!existsSync(file)) continue;
    let text = readFileSync(file, 'utf8');
    if (text.includes(MARK)) continue;
    for (const { before, after } of HUNKS.filter((h) => h.file === name)) {
      if (text.split(before).length !== 2) {
        console.error(`patches/postgres-close-race.mjs: ${file} does not hold the expected code once; not patched`);
        process.exit(1);
      }
      text = text.replace(before, after);
    }
    writeFileSync(file, text);
    patched++;
  }
}
if (patched > 0) console.log(`patches/postgres-close-race.mjs: patched postgres ${VERSION} (${patched} files)`);
