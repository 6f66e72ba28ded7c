/**
 * SCAIBUNKER_IDLE_HEAP_RELEASE: on (the default) or off; anything else is refused before a
 * server starts anything.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const CLI = new URL('../bin/scaibunker.js', import.meta.url).pathname;

for (const command of ['serve', 'controller', 'worker']) {
  test(`${command} refuses a SCAIBUNKER_IDLE_HEAP_RELEASE that is neither on nor off, before it starts`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-heap-release-'));
    try {
      const dataDir = join(dir, 'data');
      const args = [command, '--port', '0', '--data-dir', dataDir, ...(command === 'worker' ? ['--controller', 'http://127.0.0.1:9'] : [])];
      const r = spawnSync(process.execPath, [CLI, ...args], {
        env: { ...process.env, SCAIBUNKER_IDLE_HEAP_RELEASE: 'sometimes', SCAIBUNKER_WORKER_TOKEN: 't' },
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /SCAIBUNKER_IDLE_HEAP_RELEASE must be on or off, not 'sometimes'/);
      assert.equal(existsSync(dataDir), false, 'nothing was made');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
