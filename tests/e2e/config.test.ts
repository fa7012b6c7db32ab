// SPEC §1 through the real CLI: `agentgate serve` with a bad flag or env var exits 2 with one line
// on stderr naming the option, before it touches a database.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';

describe('agentgate serve with invalid configuration', () => {
  test('a bad flag exits 2 with one line naming the flag', async () => {
    const r = await runCli(['serve', '--heartbeat-interval', '5x']);
    assert.equal(r.code, 2);
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /--heartbeat-interval/);
    assert.equal(r.stdout, '');
  });

  test('a bad env var exits 2 with one line naming the variable', async () => {
    const r = await runCli(['serve'], { AGENTGATE_MAX_FRAME_BYTES: 'abc' });
    assert.equal(r.code, 2);
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /AGENTGATE_MAX_FRAME_BYTES/);
  });
});
