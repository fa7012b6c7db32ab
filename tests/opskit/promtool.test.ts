// SPEC §11: the alert rules pass `promtool check rules` and `promtool test rules` (alerts.test.yml
// fires each alert once and spares it once). Debian's `prometheus` package ships promtool;
// without it this prints one line and skips.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { ALERT_TESTS_FILE, ALERTS_FILE, REPO } from '../helpers/ops-kit.ts';
import { findTool } from '../helpers/system-tool.ts';

const PROMTOOL = findTool('promtool');
if (!PROMTOOL) console.log('skipped: promtool is not installed (apt-get install prometheus)');

function promtool(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL!, args, { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('§11 promtool', { skip: !PROMTOOL }, () => {
  test('check rules', () => {
    const r = promtool('check', 'rules', ALERTS_FILE);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: \d+ rules found/);
  });

  test('test rules', () => {
    const r = promtool('test', 'rules', ALERT_TESTS_FILE);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });
});
