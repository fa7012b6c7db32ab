// `npm test`: builds dist/ (the e2e tests run the compiled bin, the unit tests the source: both must
// be the current code), starts one embedded PostgreSQL for the whole run, migrates a template
// database, and runs every *.test.ts file under node's test runner; each file clones its own
// database from the template (helpers/db.ts), so files run in parallel. PostgreSQL is stopped by PID
// at the end. `node --import tsx tests/run.ts <substring>...` runs the matching files only.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const TEMPLATE_DB = 'agentgate_template';

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

const root = path.dirname(new URL(import.meta.url).pathname);
const repo = path.dirname(root);
const filter = process.argv.slice(2);
let files = findTests(root);
if (filter.length) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

// Incremental: after no edit this is a few hundred milliseconds.
const tsc = path.join(repo, 'node_modules/.bin/tsc');
const build = spawnSync(tsc, ['-b'], { cwd: repo, stdio: 'inherit' });
if (build.status !== 0) {
  const why = build.error ? build.error.message : `exit code ${build.status ?? build.signal}`;
  console.error(`tests/run.ts: the build failed (${tsc} -b: ${why}); not running tests against a stale dist/`);
  process.exit(1);
}

// Imported only now: the gateway's source may import the workspace packages' dist/.
const { removeEmbeddedCluster, startEmbeddedPostgres } = await import('../gateway/src/embedded/postgres.ts');
const { connect } = await import('../gateway/src/store/db.ts');
const { migrate } = await import('../gateway/src/store/migrate.ts');

// The state dir (mode 0700); as root the cluster itself lives where the postgres user can reach it.
const work = mkdtempSync(path.join(tmpdir(), 'agentgate-test-'));
const dataDir = path.join(work, 'pgdata');
const pg = await startEmbeddedPostgres({
  dataDir,
  settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '400' },
});
let code = 1;
try {
  // The template belongs to the gateway's role (no superuser), which migrates it, as `npm start`
  // does; the clones keep those owners (helpers/db.ts).
  const admin = connect(pg.adminUrl, { max: 1 });
  await admin.unsafe(`create database ${TEMPLATE_DB} owner ${new URL(pg.url).username}`);
  await admin.end();
  const tplUrl = new URL(pg.url);
  tplUrl.pathname = `/${TEMPLATE_DB}`;
  const tpl = connect(tplUrl.toString(), { max: 1 });
  await migrate(tpl);
  await tpl.end();

  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=120000', ...files],
    {
      stdio: 'inherit',
      env: {
        ...process.env,
        AGENTGATE_TEST_PG_URL: pg.adminUrl,
        AGENTGATE_TEST_PG_GATEWAY_URL: pg.url,
        AGENTGATE_TEST_TEMPLATE_DB: TEMPLATE_DB,
      },
    },
  );
  const stop = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  code = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
} finally {
  await pg.stop();
  removeEmbeddedCluster(dataDir);
  rmSync(work, { recursive: true, force: true });
}
process.exit(code);
