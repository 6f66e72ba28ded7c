/**
 * `scaibunker snapshot …`, `bunker create --from-snapshot`, `bunker fork` and
 * `bunker pause --passivate`, run as real processes against a real controller (SQLite, a fake
 * worker that answers snapshots with a made-up archive and records spawns) — through the SDK's
 * `bunker.snapshot()`, `fork()`, `pause({passivate})` and `client.snapshots`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { servedController } from '../../controller/test/helpers/fakeWorker.js';
import { type CliRun, runCli, startCli } from './support/runCli.js';

const cli = runCli;

const json = (run: CliRun): any => {
  assert.equal(run.code, 0, `exit 0 expected; stderr: ${run.stderr}`);
  return JSON.parse(run.stdout);
};

describe('scaibunker snapshot', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let conn: string[];

  before(async () => {
    served = await servedController();
    conn = ['--url', served.url, '--api-key', served.adminKey];
  });
  after(async () => served?.close());

  test('create waits until ready; ls, get; a bunker restored from it; rm', async () => {
    const bunker = json(await cli(['bunker', 'create', '--disk', '2048', ...conn, '--json']));
    const made = await cli(['snapshot', 'create', bunker.id, '--name', 'before', '--expires-in', '3600', ...conn]);
    assert.equal(made.code, 0, made.stderr);
    const id = made.stdout.trim();
    assert.match(id, /^sn_[0-9a-z]{20}$/);
    const got = json(await cli(['snapshot', 'get', id, ...conn, '--json']));
    assert.equal(got.state, 'ready');
    assert.equal(got.name, 'before');
    assert.ok(got.expires_at);
    assert.match((await cli(['snapshot', 'get', id, ...conn])).stdout, /sha256\s+a{64}/);
    const table = await cli(['snapshot', 'ls', '--bunker', bunker.id, ...conn]);
    assert.match(table.stdout, /SOURCE/);
    assert.match(table.stdout, new RegExp(`${id}.*before.*user.*ready`));

    const restored = json(await cli(['bunker', 'create', '--from-snapshot', id, ...conn, '--json']));
    assert.equal(restored.snapshot_id, id);
    assert.equal(restored.disk_mb, 2048);
    assert.equal(served.worker.spawns.at(-1)?.restore?.snapshotId, id);

    const rm = await cli(['snapshot', 'rm', id, ...conn]);
    assert.equal(rm.code, 0, rm.stderr);
    const missing = await cli(['snapshot', 'get', id, ...conn]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /SNAPSHOT_NOT_FOUND/);
  });

  test('a snapshot that fails exits 1 with its reason; --no-wait prints it creating', async () => {
    const bunker = json(await cli(['bunker', 'create', ...conn, '--json']));
    served.worker.failSnapshots.on = true;
    try {
      const failed = await cli(['snapshot', 'create', bunker.id, ...conn]);
      assert.equal(failed.code, 1);
      assert.match(failed.stderr, /SNAPSHOT_FAILED/);
    } finally {
      served.worker.failSnapshots.on = false;
    }
    let release: () => void = () => {};
    served.worker.holdSnapshots.gate = new Promise<void>((r) => (release = r));
    try {
      const pending = json(await cli(['snapshot', 'create', bunker.id, '--no-wait', ...conn, '--json']));
      assert.equal(pending.state, 'creating');
    } finally {
      served.worker.holdSnapshots.gate = undefined;
      release();
    }
  });

  test('bunker fork prints the new ids; pause --passivate and resume', async () => {
    const bunker = json(await cli(['bunker', 'create', '--lifecycle', 'persistent', '--auto-resume', ...conn, '--json']));
    assert.equal(bunker.auto_resume, true);
    const forked = await cli(['bunker', 'fork', bunker.id, '--count', '2', ...conn]);
    assert.equal(forked.code, 0, forked.stderr);
    const ids = forked.stdout.trim().split('\n');
    assert.equal(ids.length, 2);
    for (const id of ids) assert.match(id, /^bk_/);

    const paused = json(await cli(['bunker', 'pause', bunker.id, '--passivate', ...conn, '--json']))[0];
    assert.equal(paused.state, 'paused');
    assert.equal(paused.passivated, true);
    const resumed = json(await cli(['bunker', 'resume', bunker.id, ...conn, '--json']))[0];
    assert.equal(resumed.state, 'running');
    assert.equal(resumed.passivated, false);
  });

  test('snapshot create and fork show progress on stderr while they wait; --json keeps stderr quiet and prints the object', async () => {
    const bunker = json(await cli(['bunker', 'create', ...conn, '--json']));
    let release: () => void = () => {};
    served.worker.holdSnapshots.gate = new Promise<void>((r) => (release = r));
    const snap = startCli(['snapshot', 'create', bunker.id, ...conn]);
    try {
      // Not a terminal: one line per step. The worker holds the snapshot, so it is seen creating.
      await snap.stderrMatches(/snapshotting bk_\w+: sn_\w+ creating\n/);
      release();
      const run = await snap.done;
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /^snapshotting bk_\w+\n/);
      assert.match(run.stderr, /snapshot sn_\w+ ready \(\d+\.\d MB\)\n$/);
      assert.match(run.stdout, /^sn_\w+\n$/);
    } finally {
      served.worker.holdSnapshots.gate = undefined;
      release();
      snap.kill();
    }

    served.worker.holdSnapshots.gate = new Promise<void>((r) => (release = r));
    const fork = startCli(['bunker', 'fork', bunker.id, '--count', '2', ...conn]);
    try {
      await fork.stderrMatches(/forking bk_\w+ ×2: snapshot sn_\w+ creating\n/);
      release();
      const run = await fork.done;
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /^forking bk_\w+ ×2: taking a snapshot\n/);
      assert.match(run.stderr, /2 bunker\(s\) from sn_\w+\n$/);
      assert.equal(run.stdout.trim().split('\n').length, 2);
    } finally {
      served.worker.holdSnapshots.gate = undefined;
      release();
      fork.kill();
    }

    const quietSnap = await cli(['snapshot', 'create', bunker.id, ...conn, '--json']);
    assert.equal(json(quietSnap).state, 'ready');
    assert.equal(quietSnap.stderr, '');
    const quietFork = await cli(['bunker', 'fork', bunker.id, ...conn, '--json']);
    const forks = json(quietFork);
    assert.equal(forks.length, 1);
    assert.match(forks[0].id, /^bk_/);
    assert.equal(quietFork.stderr, '');
  });
});
