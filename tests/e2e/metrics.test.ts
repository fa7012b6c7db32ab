// SPEC §3 series an operator's dashboard needs, from a real gateway: the build's version, whether
// the database is up, every refusal by reason and every session close by code (each label value
// exported from start, at 0), and the last-resort handler's counter.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { RPC_PATH } from '@agentgate/shared';
import { connectAgent } from '../helpers/agent-socket.ts';
import { createFixture } from '../helpers/db-fixtures.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { httpRequest } from '../helpers/http.ts';
import { metricSum, samples, scrape } from '../helpers/prometheus.ts';
import { eventually } from '../helpers/wait.ts';

const REASONS = [
  'not_found',
  'unauthorized',
  'forbidden',
  'not_websocket',
  'database_down',
  'draining',
  'token_checks_full',
  'max_connections',
  'header_timeout',
  'bad_request',
];

describe('§3 the series of the dashboard', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({ databaseUrl: db.url });
  });
  after(async () => {
    await gw?.stop();
    await db?.drop();
  });

  test('build_info, database_up and the zero-valued label sets from start', async () => {
    const all = await scrape(gw.httpUrl);
    const { version } = JSON.parse(readFileSync(new URL('../../gateway/package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    assert.deepEqual(
      samples(all, 'agentgate_build_info').map((s) => [s.labels['version'], s.value]),
      [[version, 1]],
    );
    assert.equal(metricSum(all, 'agentgate_database_up'), 1);
    for (const reason of REASONS) {
      assert.equal(samples(all, 'agentgate_connections_refused_total', { reason }).length, 1, reason);
    }
    for (const code of ['1000', '1001', '4008', '4009', '4501']) {
      assert.equal(samples(all, 'agentgate_sessions_closed_total', { code }).length, 1, code);
    }
    assert.equal(samples(all, 'agentgate_unhandled_rejections_total').length, 1);
  });

  test('refusals are counted by reason, closes by code', async () => {
    const before = await scrape(gw.httpUrl);
    const refused = (all: typeof before, reason: string) =>
      metricSum(all, 'agentgate_connections_refused_total', { reason });
    await httpRequest(`${gw.httpUrl}/nope`);
    await httpRequest(`${gw.httpUrl}${RPC_PATH}`, { upgrade: true });
    const fx = await createFixture(db.sql);
    await httpRequest(`${gw.httpUrl}${RPC_PATH}`, { headers: { 'Coder-Session-Token': fx.token } });
    const agent = await connectAgent(gw.url, fx.token);
    await agent.close(1000);
    const after = await eventually('the close to be counted', async () => {
      const all = await scrape(gw.httpUrl);
      const closed = metricSum(all, 'agentgate_sessions_closed_total', { code: '1000' });
      return closed > metricSum(before, 'agentgate_sessions_closed_total', { code: '1000' }) && all;
    });
    assert.equal(refused(after, 'not_found') - refused(before, 'not_found'), 1);
    assert.equal(refused(after, 'unauthorized') - refused(before, 'unauthorized'), 1);
    assert.equal(refused(after, 'not_websocket') - refused(before, 'not_websocket'), 1);
  });
});
