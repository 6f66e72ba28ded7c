/**
 * `scaibunker serve` on a data disk that fills up: its data dir is a small tmpfs mounted here
 * (the SQLite file, the blob store with the exec outputs, the worker's state; the images stay in
 * the real image dir). An exec whose output does not fit answers (with `output_store` saying
 * what was kept) or says 507 INSUFFICIENT_STORAGE, and the server keeps serving, same process;
 * `--output-store-cap-bytes` caps what one exec stores; `--disk-reserve` refuses new bunkers
 * (507) and makes /readyz say the disk is not ok while the disk is under it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { Bunker, type ExecResult, ScaiBunkerClient, ScaiBunkerError } from '@scaibunker/sdk';
import {
  adminKeyOf,
  destroyLeftoverBunkers,
  eventually,
  FAST_INTERVALS,
  freePort,
  IMAGE_DIR,
  mountsUnder,
  ServerProcess,
} from './harness.js';

const MiB = 1024 * 1024;
const INLINE_CAP = 65536;
const OUTPUT_STORES = ['inline', 'complete', 'capped', 'failed'];

/** The exec result with the output-store fields this feature adds. */
type StoredExecResult = ExecResult & { output_store?: string; output_stored_bytes?: number };

interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; error?: string; free_bytes?: number; reserve_bytes?: number }>;
}

/** A tmpfs of `sizeMb` mounted on a fresh directory under /tmp. */
class SmallDisk {
  private mounted = true;

  private constructor(readonly dir: string) {}

  static mount(sizeMb: number): SmallDisk {
    // Short path: bunker agent sockets live below, and Unix socket paths are limited to 108 bytes.
    const dir = mkdtempSync('/tmp/sbd-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0755`, 'scaibunker-e2e-disk', dir]);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return new SmallDisk(dir);
  }

  get freeBytes(): number {
    const s = statfsSync(this.dir);
    return s.bavail * s.bsize;
  }

  /**
   * Unmounts the disk (lazily when something still holds it) and removes its mount point.
   * Answers the mounts that were still below it (none: the product and the cleanup released all).
   */
  unmount(): string[] {
    if (!this.mounted) return [];
    const below = mountsUnder(`${this.dir}/`);
    // Whatever is still below goes first, deepest first, so that the disk itself can go.
    for (const m of [...below].sort((a, b) => b.length - a.length)) {
      try {
        execFileSync('umount', [m]);
      } catch {
        execFileSync('umount', ['-l', m]);
      }
    }
    try {
      execFileSync('umount', [this.dir]);
    } catch {
      execFileSync('umount', ['-l', this.dir]);
    }
    this.mounted = false;
    rmSync(this.dir, { recursive: true, force: true });
    return below;
  }
}

async function readyz(base: string): Promise<{ status: number; body: Readiness; text: string }> {
  const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let body: Readiness;
  try {
    body = JSON.parse(text) as Readiness;
  } catch {
    body = { ready: false, checks: {} };
  }
  return { status: res.status, body, text };
}

async function expectInsufficientStorage(p: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ScaiBunkerError, `${what}: expected a ScaiBunkerError, got ${String(err)}`);
    assert.equal(err.status, 507, `${what}: ${err.code} ${err.message}`);
    assert.equal(err.code, 'INSUFFICIENT_STORAGE', `${what}: ${err.message}`);
    return true;
  });
}

/**
 * One `scaibunker serve` on its own small disk for a describe block: started in before(), and in
 * after() its bunkers terminated through the API, the process stopped, and the disk unmounted
 * (even when a test or the start failed). Asserts the process never exited until then.
 */
function servedOnSmallDisk(sizeMb: number, args: string[], prepare: (dir: string) => void = () => undefined) {
  const ctx = {
    disk: undefined as SmallDisk | undefined,
    server: undefined as ServerProcess | undefined,
    pid: 0,
    alice: undefined as unknown as ScaiBunkerClient,
    created: [] as Bunker[],
    get base(): string {
      return (ctx.server as ServerProcess).url;
    },
    get dir(): string {
      return (ctx.disk as SmallDisk).dir;
    },
    async create(opts: Record<string, unknown> = {}): Promise<Bunker> {
      // The worker offers the data dir's size as its disk: 64 MB here, so small bunkers.
      const b = await Bunker.create({ image: 'minimal', disk_mb: 16, memory_mb: 128, ...opts }, ctx.alice);
      ctx.created.push(b);
      return b;
    },
    /** The server is the process started in before() and has not exited. */
    assertSameProcess(): void {
      const p = ctx.server;
      assert.ok(p && p.child.exitCode === null && p.child.signalCode === null, `the server exited:\n${p?.output().slice(-4000)}`);
      assert.equal(p.child.pid, ctx.pid, 'the server is the process started at first');
    },
  };

  before(async () => {
    ctx.disk = SmallDisk.mount(sizeMb);
    prepare(ctx.disk.dir);
    ctx.server = await ServerProcess.start([
      'serve',
      '--port',
      String(await freePort()),
      '--data-dir',
      ctx.disk.dir,
      '--image-dir',
      IMAGE_DIR,
      ...FAST_INTERVALS,
      ...args,
    ]);
    ctx.pid = ctx.server.child.pid ?? 0;
    const admin = new ScaiBunkerClient({ baseUrl: ctx.server.url, apiKey: adminKeyOf(ctx.disk.dir) });
    const tenant = await admin.admin.createTenant('disk');
    const { key } = await admin.admin.createApiKey(tenant.id, 'disk-key', ['scaibunker:admin:tenant']);
    ctx.alice = new ScaiBunkerClient({ baseUrl: ctx.server.url, apiKey: key });
  });

  // Each test's bunkers end with it: the worker's disk capacity (the small data dir) is the limit.
  afterEach(async () => {
    if (ctx.server && ctx.server.child.exitCode === null && ctx.server.child.signalCode === null) {
      for (const b of ctx.created.splice(0)) await b.terminate().catch(() => undefined);
    }
  });

  after(async () => {
    const errors: string[] = [];
    const p = ctx.server;
    const wasAlive = !!p && p.child.exitCode === null && p.child.signalCode === null;
    if (wasAlive) for (const b of ctx.created) await b.terminate().catch(() => undefined);
    await p?.kill();
    let orphans: string[] = [];
    let left: string[] = [];
    if (ctx.disk) {
      try {
        orphans = await destroyLeftoverBunkers(join(ctx.disk.dir, 'worker'));
      } catch (err) {
        errors.push(`destroying leftover bunkers: ${(err as Error).message}`);
      }
      left = ctx.disk.unmount();
      assert.deepEqual(mountsUnder(ctx.disk.dir), [], 'nothing is left mounted at or under the disk');
    }
    if (p) assert.ok(wasAlive, `the server was still running at the end:\n${p.output().slice(-4000)}`);
    assert.deepEqual(errors, []);
    assert.deepEqual(left, [], 'the product released every mount below its data dir');
    assert.deepEqual(orphans, [], 'every bunker was destroyed by the product, not by this cleanup');
  });

  return ctx;
}

describe('scaibunker serve on a 64 MiB data disk', () => {
  // No reserve: the output fills the disk for real (ENOSPC), not just up to a reserve.
  const s = servedOnSmallDisk(64, ['--output-cap-bytes', String(INLINE_CAP), '--disk-reserve', '0']);

  test('/readyz is public and reports every check ok, the disk check measuring the data dir; /healthz is 200', async () => {
    const r = await readyz(s.base);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.ready, true);
    for (const check of ['database', 'live_state', 'blob_store', 'disk'])
      assert.equal(r.body.checks?.[check]?.ok, true, `${check}: ${r.text}`);
    const disk = r.body.checks.disk as NonNullable<Readiness['checks'][string]>;
    assert.ok(Number.isInteger(disk.free_bytes) && Number.isInteger(disk.reserve_bytes), `free_bytes and reserve_bytes: ${r.text}`);
    assert.ok(
      (disk.free_bytes ?? 0) > 0 && (disk.free_bytes ?? 0) <= 64 * MiB,
      `free_bytes ${disk.free_bytes} is the data dir's (64 MiB tmpfs)`,
    );
    assert.ok((disk.reserve_bytes ?? -1) >= 0);
    const statfsFree = (s.disk as SmallDisk).freeBytes;
    assert.ok(Math.abs((disk.free_bytes ?? 0) - statfsFree) < 8 * MiB, `free_bytes ${disk.free_bytes} ≈ statfs ${statfsFree}`);
    assert.equal((await fetch(`${s.base}/healthz`)).status, 200);
    s.assertSameProcess();
  });

  test('output_store says where the output went: inline under the cap, complete in the store past it', async () => {
    const b = await s.create();
    const small = (await b.exec('echo hi')) as StoredExecResult;
    assert.equal(small.stdout, 'hi\n');
    assert.equal(small.truncated, false);
    assert.equal(small.output_store, 'inline', JSON.stringify({ ...small, stdout: undefined }));
    assert.equal(small.output_stored_bytes, 0);

    // Distinct lines: the stored output must be the output exactly (no part repeated or lost).
    const expected = Array.from({ length: 150_000 }, (_, i) => `${i + 1}\n`).join('');
    const big = (await b.exec('seq 1 150000')) as StoredExecResult;
    assert.equal(big.truncated, true);
    assert.equal(big.stdout, expected.slice(0, INLINE_CAP), 'the inline part is the start of the output');
    assert.equal(big.output_store, 'complete', JSON.stringify({ ...big, stdout: undefined }));
    assert.equal(big.output_stored_bytes, expected.length);
    const full = await b.fullOutput(big.exec_id);
    assert.equal(full.length, expected.length);
    assert.ok(full.toString() === expected, 'the stored output is the whole output, byte for byte');
    s.assertSameProcess();
  });

  test('an exec whose output is larger than the free space answers (failed or capped store) or 507, and the server keeps serving', async () => {
    const b = await s.create();
    assert.equal((await b.exec('echo before')).stdout, 'before\n');
    const disk = s.disk as SmallDisk;
    const freeBefore = disk.freeBytes;
    let result: StoredExecResult | undefined;
    try {
      result = (await b.exec('head -c 200000000 /dev/zero', { timeoutS: 180 })) as StoredExecResult;
    } catch (err) {
      assert.ok(err instanceof ScaiBunkerError, `the exec answers, or fails with an API error: ${String(err)}`);
      assert.equal(err.status, 507, `${err.code}: ${err.message}`);
      assert.equal(err.code, 'INSUFFICIENT_STORAGE');
    }
    if (result) {
      const shown = JSON.stringify({ ...result, stdout: `(${result.stdout.length} chars)` });
      assert.equal(result.exit_code, 0, shown);
      assert.equal(result.truncated, true, shown);
      assert.equal(result.stdout.length, INLINE_CAP, 'the inline part is whole');
      assert.ok(['failed', 'capped'].includes(result.output_store ?? ''), `output_store is failed or capped: ${shown}`);
      assert.ok(Number.isInteger(result.output_stored_bytes), shown);
      assert.ok((result.output_stored_bytes ?? -1) >= 0 && (result.output_stored_bytes ?? 0) < 200_000_000, shown);
      if (result.output_store === 'capped') {
        const full = await b.fullOutput(result.exec_id);
        assert.equal(full.length, result.output_stored_bytes, 'what is stored is what output_stored_bytes says');
        assert.ok(full.every((c: number) => c === 0));
      }
      // The result's exec-log row is written.
      const id = result.exec_id;
      await eventually('the exec-log row of the disk-full exec', async () =>
        (await b.execLogs({ limit: 10 })).some((l) => l.id === id) ? true : undefined,
      );
    }
    console.log(
      `[disk] 200 MB of output on ${(freeBefore / MiB).toFixed(1)} MiB free: ${
        result ? `200, output_store=${result.output_store}, output_stored_bytes=${result.output_stored_bytes}` : '507 INSUFFICIENT_STORAGE'
      }`,
    );
    s.assertSameProcess();
    // Nothing partial is kept unless it is the capped output the result names.
    if (result?.output_store !== 'capped') {
      await eventually(
        'the space of the partial output given back',
        async () => (disk.freeBytes >= freeBefore - 4 * MiB ? true : undefined),
        15_000,
      ).catch(() => assert.fail(`free ${(disk.freeBytes / MiB).toFixed(1)} MiB, ${(freeBefore / MiB).toFixed(1)} MiB before the exec`));
    }
    // The server keeps serving: the same bunker, a new one, the exec log.
    assert.equal((await b.exec('echo after')).stdout, 'after\n');
    const other = await s.create();
    assert.equal((await other.exec(['echo', 'new'])).stdout, 'new\n');
    assert.ok((await b.execLogs()).some((l) => l.command.includes('echo after')));
    s.assertSameProcess();
  });

  test('a streamed exec whose output is larger than the free space ends (exit or 507), and the server keeps serving', async () => {
    const b = await s.create();
    let seen = 0;
    let exit: StoredExecResult | undefined;
    try {
      exit = (await b.exec('yes | head -c 100000000', {
        timeoutS: 180,
        collectOutput: false,
        onStdout: (t: string) => {
          seen += t.length;
        },
      })) as StoredExecResult;
    } catch (err) {
      assert.ok(err instanceof ScaiBunkerError, `the exec answers, or fails with an API error: ${String(err)}`);
      assert.equal(err.code, 'INSUFFICIENT_STORAGE', `${err.status} ${err.message}`);
    }
    if (exit) {
      assert.equal(exit.exit_code, 0);
      assert.equal(exit.truncated, true);
      assert.equal(seen, 100_000_000, 'the stream delivered all of the output');
      assert.ok(['failed', 'capped'].includes(exit.output_store ?? ''), `output_store: ${JSON.stringify(exit)}`);
    }
    assert.equal((await b.exec('echo after')).stdout, 'after\n');
    s.assertSameProcess();
  });
});

describe('--output-store-cap-bytes caps what one exec stores', () => {
  const CAP = 4_000_000;
  const s = servedOnSmallDisk(64, [
    '--output-cap-bytes',
    String(INLINE_CAP),
    '--output-store-cap-bytes',
    String(CAP),
    '--disk-reserve',
    '0',
  ]);

  test(`past ${CAP} bytes: output_store capped, the stored output at most the cap and readable through full_output_ref`, async () => {
    const b = await s.create();
    // About 20 MB of distinct lines: what is stored must be exactly the start of the output.
    const r = (await b.exec('seq 1 2800000', { timeoutS: 120 })) as StoredExecResult;
    const shown = JSON.stringify({ ...r, stdout: `(${r.stdout.length} chars)` });
    assert.equal(r.exit_code, 0, shown);
    assert.equal(r.truncated, true, shown);
    assert.equal(r.output_store, 'capped', shown);
    assert.ok(Number.isInteger(r.output_stored_bytes) && (r.output_stored_bytes ?? 0) > 0, shown);
    assert.ok((r.output_stored_bytes ?? Number.POSITIVE_INFINITY) <= CAP, shown);
    assert.ok(r.full_output_ref, 'full_output_ref is set');
    // Read it through the route full_output_ref names.
    const res = await fetch(`${s.base}${r.full_output_ref}?stream=stdout`, { headers: { authorization: `Bearer ${s.alice.apiKey}` } });
    assert.equal(res.status, 200);
    const stored = Buffer.from(await res.arrayBuffer());
    assert.ok(stored.length > 0 && stored.length <= CAP, `stored ${stored.length} bytes, cap ${CAP}`);
    assert.equal(stored.length, r.output_stored_bytes, 'output_stored_bytes is what is stored (stderr is empty)');
    const expectedStart = Array.from({ length: 700_000 }, (_, i) => `${i + 1}\n`)
      .join('')
      .slice(0, stored.length);
    assert.ok(stored.toString() === expectedStart, 'the stored output is the start of the output, byte for byte');
    assert.ok((await b.fullOutput(r.exec_id)).equals(stored));
    assert.ok(s.disk && s.disk.freeBytes > 64 * MiB - CAP - 16 * MiB, 'no more than the cap was kept on the disk');
    s.assertSameProcess();
  });

  test('under the cap the stored output is complete', async () => {
    const b = await s.create();
    const r = (await b.exec("head -c 2000000 /dev/zero | tr '\\0' b")) as StoredExecResult;
    assert.equal(r.truncated, true);
    assert.equal(r.output_store, 'complete', JSON.stringify({ ...r, stdout: undefined }));
    assert.equal(r.output_stored_bytes, 2_000_000);
    assert.equal((await b.fullOutput(r.exec_id)).length, 2_000_000);
    s.assertSameProcess();
  });

  test('the cap is per exec: stdout and stderr together store at most the cap', async () => {
    const b = await s.create();
    const r = (await b.exec("head -c 3000000 /dev/zero | tr '\\0' o; head -c 3000000 /dev/zero | tr '\\0' e >&2", {
      timeoutS: 120,
    })) as StoredExecResult;
    const shown = JSON.stringify({ ...r, stdout: `(${r.stdout.length})`, stderr: `(${r.stderr.length})` });
    assert.equal(r.output_store, 'capped', shown);
    const out = await b.fullOutput(r.exec_id, 'stdout').catch(() => Buffer.alloc(0));
    const err = await b.fullOutput(r.exec_id, 'stderr').catch(() => Buffer.alloc(0));
    assert.ok(out.length + err.length <= CAP, `stored ${out.length} + ${err.length} bytes, cap ${CAP} per exec`);
    assert.equal(out.length + err.length, r.output_stored_bytes, shown);
    s.assertSameProcess();
  });

  test(`${OUTPUT_STORES.join('/')} are the only output_store values in results`, async () => {
    const b = await s.create();
    for (const cmd of ['true', 'echo x >&2', "head -c 100000 /dev/zero | tr '\\0' c"]) {
      const r = (await b.exec(cmd)) as StoredExecResult;
      assert.ok(OUTPUT_STORES.includes(r.output_store ?? ''), `${cmd}: ${r.output_store}`);
    }
  });
});

describe('--disk-reserve: under it new bunkers are refused (507) and /readyz says the disk is not ok', () => {
  const BALLAST = 'ballast.bin';
  // 64 MiB disk, 60 MiB reserve: an 8 MiB file puts the disk under the reserve before the server starts.
  const s = servedOnSmallDisk(64, ['--output-cap-bytes', String(INLINE_CAP), '--disk-reserve', '60m'], (dir) =>
    writeFileSync(join(dir, BALLAST), Buffer.alloc(8 * MiB, 1)),
  );

  test('creates answer 507 INSUFFICIENT_STORAGE and leave nothing; /readyz 503 with disk not ok; /healthz 200; room made: all ok again', async () => {
    const r = await readyz(s.base);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.body.ready, false);
    const disk = r.body.checks.disk;
    assert.equal(disk?.ok, false, r.text);
    assert.equal(typeof disk?.error, 'string', `disk.error says why: ${r.text}`);
    assert.equal(disk?.reserve_bytes, 60 * MiB, r.text);
    assert.ok((disk?.free_bytes ?? Number.POSITIVE_INFINITY) < 60 * MiB, r.text);
    assert.equal(r.body.checks.database?.ok, true, r.text);
    assert.equal((await fetch(`${s.base}/healthz`)).status, 200, 'liveness is not readiness');

    try {
      const started = Date.now();
      await expectInsufficientStorage(Bunker.create({ image: 'minimal', disk_mb: 16 }, s.alice), 'a create under the reserve');
      assert.ok(Date.now() - started < 10_000, 'refused at once');
      const listed: string[] = [];
      for await (const b of Bunker.list({}, s.alice)) listed.push(`${b.id} ${b.state} ${b.info.termination_reason ?? ''}`);
      if (listed.length > 0) console.log(`[disk] rows left by the refused create: ${listed.join('; ')}`);
      assert.deepEqual(
        listed.filter((l) => !/ (failed|terminated) /.test(l)),
        [],
        'the refused create left no bunker running or pending',
      );
      s.assertSameProcess();
    } finally {
      // Room made: ready again and creates work.
      rmSync(join(s.dir, BALLAST), { force: true });
    }
    await eventually('ready once the disk is over the reserve again', async () =>
      (await readyz(s.base)).status === 200 ? true : undefined,
    );
    const again = await readyz(s.base);
    assert.equal(again.body.checks.disk?.ok, true, again.text);
    const b = await s.create();
    assert.equal((await b.exec('echo room')).stdout, 'room\n');
    s.assertSameProcess();
  });

  test('the disk going under the reserve while a bunker runs: it keeps running, its overflowing output is not spilled, creates 507; ready again after', async () => {
    const b = await s.create();
    assert.equal((await readyz(s.base)).status, 200, 'over the reserve to begin with');
    const disk = s.disk as SmallDisk;
    writeFileSync(join(s.dir, BALLAST), Buffer.alloc(8 * MiB, 1));
    try {
      const r = await readyz(s.base);
      assert.equal(r.status, 503, r.text);
      assert.equal(r.body.checks.disk?.ok, false, r.text);
      await expectInsufficientStorage(Bunker.create({ image: 'minimal', disk_mb: 16 }, s.alice), 'a create once under the reserve');
      assert.equal((await b.exec('echo still')).stdout, 'still\n', 'the running bunker keeps working');
      const freeBefore = disk.freeBytes;
      const big = (await b.exec("head -c 2000000 /dev/zero | tr '\\0' z")) as StoredExecResult;
      const shown = JSON.stringify({ ...big, stdout: `(${big.stdout.length} chars)` });
      assert.equal(big.exit_code, 0, shown);
      assert.equal(big.truncated, true, shown);
      assert.equal(big.stdout.length, INLINE_CAP, 'the inline part is whole');
      assert.ok(['capped', 'failed'].includes(big.output_store ?? ''), `nothing spills under the reserve: ${shown}`);
      assert.equal(big.output_stored_bytes, 0, shown);
      assert.ok(disk.freeBytes >= freeBefore - MiB, 'the disk did not fill further');
      s.assertSameProcess();
    } finally {
      rmSync(join(s.dir, BALLAST), { force: true });
    }
    await eventually('ready once the disk is over the reserve again', async () =>
      (await readyz(s.base)).status === 200 ? true : undefined,
    );
    const other = await s.create();
    assert.equal((await other.exec('echo room')).stdout, 'room\n');
    s.assertSameProcess();
  });
});
