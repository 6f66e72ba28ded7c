/**
 * The worker daemon end to end, against the real ContainerProvider and the real agent, over
 * both transports the controller uses: the in-process Worker and HttpWorkerClient →
 * WorkerHttpServer → Worker. Needs root and the images from `bash scripts/build-images.sh`.
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { newId } from '@scaibunker/core';
import { Worker } from '../../src/daemon/Worker.js';
import { HttpControllerLink } from '../../src/http/HttpControllerLink.js';
import { HttpWorkerClient } from '../../src/http/HttpWorkerClient.js';
import { WorkerHttpServer } from '../../src/http/WorkerHttpServer.js';
import { ContainerProvider } from '../../src/providers/container/ContainerProvider.js';
import type { ControllerLink, Heartbeat, SpawnRequest, WorkerApi, WorkerErrorCode } from '../../src/WorkerApi.js';
import { WorkerError } from '../../src/WorkerApi.js';

const IMAGE_DIR = process.env.SCAIBUNKER_IMAGE_DIR ?? '/var/lib/scaibunker/images';
const TOKEN = 'test-worker-token-0123456789abcdef';

function minimalImageSha(): string {
  const catalogPath = join(IMAGE_DIR, 'catalog.json');
  let catalog: Array<{ name: string; sha256: string }>;
  try {
    catalog = JSON.parse(readFileSync(catalogPath, 'utf8'));
  } catch (err) {
    throw new Error(`no image catalog at ${catalogPath} — run \`bash scripts/build-images.sh minimal\` first (${(err as Error).message})`);
  }
  const minimal = catalog.find((e) => e.name === 'minimal');
  if (!minimal) throw new Error(`${catalogPath} has no 'minimal' image`);
  return minimal.sha256;
}

/** Records every heartbeat; `unknownNext` is returned (once) as the reply's unknown_bunkers. */
class RecordingController implements ControllerLink {
  readonly heartbeats: Heartbeat[] = [];
  unknownNext: string[] = [];

  async heartbeat(hb: Heartbeat) {
    this.heartbeats.push(hb);
    const unknown = this.unknownNext;
    this.unknownNext = [];
    // A long interval: the tests drive heartbeats with heartbeatNow(), never by the clock.
    return { ok: true, heartbeat_interval_s: 3600, unknown_bunkers: unknown };
  }

  async putAuditBatch(): Promise<void> {
    throw new Error('these workers audit no flows');
  }

  /** One worker and no storage: an image missing from IMAGE_DIR is on no origin. */
  async imagePeers(): Promise<Array<{ worker_id: string; url: string }>> {
    return [];
  }

  async openImage(sha256: string): Promise<Readable> {
    throw new WorkerError('IMAGE_NOT_CACHED', `image ${sha256} is not in storage`);
  }

  /** Snapshots are tested in test/snapshots (with a storage); these workers have none. */
  async putSnapshot(snapshotId: string, archive: Readable): Promise<void> {
    archive.destroy();
    throw new Error(`no snapshot storage here (${snapshotId})`);
  }

  async openSnapshot(snapshotId: string): Promise<Readable> {
    throw new WorkerError('SNAPSHOT_NOT_FOUND', `snapshot ${snapshotId} is not in storage`);
  }

  get last(): Heartbeat {
    const hb = this.heartbeats.at(-1);
    assert.ok(hb, 'no heartbeat was sent');
    return hb;
  }
}

/** Resolves with the WorkerError code a promise rejects with. */
async function errorCode(p: Promise<unknown>): Promise<WorkerErrorCode> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WorkerError, `expected a WorkerError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected a rejection');
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A stream of `total` bytes in 16 KiB chunks, produced lazily (never one big buffer). */
function byteStream(total: number, fill = 0x61): Readable {
  let left = total;
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(left, 16 * 1024);
      left -= n;
      this.push(Buffer.alloc(n, fill));
    },
  });
}

for (const transport of ['in-process', 'http'] as const) {
  // Timeouts turn a wedged runtime into a failure with a name instead of a silent hang.
  describe(`worker daemon (${transport})`, { timeout: 180_000 }, () => {
    let tmp: string;
    let imageSha: string;
    let controller: RecordingController;
    let worker: Worker;
    let api: WorkerApi;
    let closeTransport: () => Promise<void> = async () => {};
    let baseUrl = '';
    const created = new Set<string>();
    let mainBunker: string;
    /** Re-pointed by tests that wait for a bunker to die. */
    let onBunkerStopped: (id: string) => void = () => {};
    /** Server-side exec promises (http): lets a test wait until the worker finished an exec. */
    const servedExecs: Array<Promise<unknown>> = [];

    const newProvider = () => new ContainerProvider({ dataDir: join(tmp, 'p'), keepIdleImages: false });

    async function startWorker(): Promise<void> {
      worker = new Worker({
        dataDir: join(tmp, 'w'),
        imageDir: IMAGE_DIR,
        providers: [newProvider()],
        controller,
        name: `test-${transport}`,
        url: '',
        logger: { info: () => {}, warn: () => {} },
        onBunkerStopped: (id) => onBunkerStopped(id),
      });
      await worker.start();
      if (transport === 'in-process') {
        api = worker;
        closeTransport = async () => {};
        return;
      }
      const served = worker;
      const observed: WorkerApi = new Proxy(served, {
        get(target, prop) {
          if (prop === 'exec') {
            return (...args: Parameters<WorkerApi['exec']>) => {
              const p = target.exec(...args);
              servedExecs.push(p.catch(() => {}));
              return p;
            };
          }
          const value = Reflect.get(target, prop, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const server = new WorkerHttpServer(observed, TOKEN);
      baseUrl = await server.listen();
      const client = new HttpWorkerClient(baseUrl, TOKEN);
      api = client;
      closeTransport = async () => {
        client.close();
        await server.close();
      };
    }

    async function stopWorker(): Promise<void> {
      await closeTransport();
      await worker.stop();
    }

    function spawnRequest(bunkerId: string): SpawnRequest {
      created.add(bunkerId);
      return {
        bunkerId,
        imageSha256: imageSha,
        isolation: 'container',
        cpuMillicores: 500,
        memoryMb: 128,
        diskMb: 256,
        networkProfile: 'isolated',
        hostname: 'bunker',
      };
    }

    before(
      async () => {
        imageSha = minimalImageSha();
        // Short: the agent's socket path lives under it and must stay < 108 bytes.
        tmp = await mkdtemp('/tmp/sbw-');
        controller = new RecordingController();
        await startWorker();
        mainBunker = newId('bk');
        await api.spawn(spawnRequest(mainBunker));
      },
      { timeout: 60_000 },
    );

    after(
      async () => {
        await stopWorker().catch(() => {});
        // Whatever happened above, no bunker outlives the suite.
        const provider = newProvider();
        await provider.init().catch(() => {});
        const leftovers = new Set([...created, ...(await provider.list().catch(() => [])).map((b) => b.id)]);
        for (const id of leftovers) await provider.destroy(id).catch((err) => console.error(`cleanup ${id}:`, err));
        await provider.unmountIdleImages().catch(() => {});
        await rm(tmp, { recursive: true, force: true });
      },
      { timeout: 60_000 },
    );

    it('spawns a bunker and runs echo hi in it', async () => {
      const out: Buffer[] = [];
      const outcome = await api.exec(mainBunker, { argv: ['echo', 'hi'], timeoutMs: 10_000 }, { onStdout: (c) => void out.push(c) });
      assert.equal(Buffer.concat(out).toString(), 'hi\n');
      assert.equal(outcome.exitCode, 0);
      assert.equal(outcome.timedOut, false);
    });

    it('delivers streamed output chunk by chunk, stdout and stderr apart, to slow handlers', async () => {
      const total = 1024 * 1024;
      let stdoutBytes = 0;
      let stdoutChunks = 0;
      const err: Buffer[] = [];
      const outcome = await api.exec(
        mainBunker,
        { argv: ['sh', '-c', `head -c ${total} /dev/zero; echo oops >&2; exit 3`], timeoutMs: 30_000 },
        {
          // An async handler: the producer must wait for it rather than buffer without bound.
          onStdout: async (c) => {
            stdoutBytes += c.length;
            stdoutChunks++;
            await new Promise((r) => setImmediate(r));
          },
          onStderr: (c) => void err.push(c),
        },
      );
      assert.equal(outcome.exitCode, 3);
      assert.equal(stdoutBytes, total);
      assert.ok(stdoutChunks > 1, `expected several chunks, got ${stdoutChunks}`);
      assert.equal(Buffer.concat(err).toString(), 'oops\n');
    });

    it('passes stdin, env and cwd through', async () => {
      const out: Buffer[] = [];
      const outcome = await api.exec(
        mainBunker,
        {
          argv: ['sh', '-c', 'cat; echo "$GREETING"; pwd'],
          stdin: 'from stdin\n',
          env: { GREETING: 'hello' },
          cwd: '/tmp',
          timeoutMs: 10_000,
        },
        { onStdout: (c) => void out.push(c) },
      );
      assert.equal(outcome.exitCode, 0);
      assert.equal(Buffer.concat(out).toString(), 'from stdin\nhello\n/tmp\n');
    });

    it('writes, stats, lists, reads and removes files', async () => {
      const size = 700 * 1024 + 3; // several chunks each way
      const written = await api.writeFile(mainBunker, '/tmp/data/blob.bin', byteStream(size, 0x62), {
        parents: true,
        mode: 0o640,
        maxBytes: 1024 * 1024,
      });
      assert.equal(written.bytes, size);

      const info = await api.stat(mainBunker, '/tmp/data/blob.bin');
      assert.equal(info.type, 'file');
      assert.equal(info.size, size);
      assert.equal(info.mode & 0o777, 0o640);

      const back = await collect(await api.readFile(mainBunker, '/tmp/data/blob.bin'));
      assert.equal(back.length, size);
      assert.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(Buffer.alloc(size, 0x62)).digest('hex'));

      await api.mkdir(mainBunker, '/tmp/data/sub', {});
      const names = (await api.list(mainBunker, '/tmp/data')).map((e) => e.name).sort();
      assert.deepEqual(names, ['blob.bin', 'sub']);

      await api.remove(mainBunker, '/tmp/data', { recursive: true });
      assert.equal(await errorCode(api.stat(mainBunker, '/tmp/data')), 'NOT_FOUND');
    });

    it('maps file errors to their codes', async () => {
      assert.equal(await errorCode(api.readFile(mainBunker, '/no/such/file')), 'NOT_FOUND');
      assert.equal(await errorCode(api.readFile(mainBunker, '/tmp')), 'IS_A_DIRECTORY');
      await api.mkdir(mainBunker, '/tmp/full', {});
      await api.writeFile(mainBunker, '/tmp/full/x', Readable.from([Buffer.from('x')]), { maxBytes: 10 });
      assert.equal(await errorCode(api.remove(mainBunker, '/tmp/full', {})), 'NOT_EMPTY');
      assert.equal(await errorCode(api.mkdir(mainBunker, '/tmp/full', {})), 'ALREADY_EXISTS');
      await api.remove(mainBunker, '/tmp/full', { recursive: true });
    });

    it('rejects a write over maxBytes with TOO_LARGE and leaves nothing behind', async () => {
      await api.mkdir(mainBunker, '/tmp/capped', {});
      const code = await errorCode(api.writeFile(mainBunker, '/tmp/capped/big.bin', byteStream(512 * 1024), { maxBytes: 100 * 1024 }));
      assert.equal(code, 'TOO_LARGE');
      assert.equal(await errorCode(api.stat(mainBunker, '/tmp/capped/big.bin')), 'NOT_FOUND');
      // Not even the agent's temp file.
      assert.deepEqual(await api.list(mainBunker, '/tmp/capped'), []);
      // The transport is still usable afterwards.
      const ok = await api.writeFile(mainBunker, '/tmp/capped/small.bin', byteStream(1000), { maxBytes: 1000 });
      assert.equal(ok.bytes, 1000);
      await api.remove(mainBunker, '/tmp/capped', { recursive: true });
    });

    it('answers BUNKER_NOT_FOUND for a bunker it does not run', async () => {
      const ghost = newId('bk');
      assert.equal(await errorCode(api.exec(ghost, { argv: ['true'], timeoutMs: 1000 }, {})), 'BUNKER_NOT_FOUND');
      assert.equal(await errorCode(api.stat(ghost, '/')), 'BUNKER_NOT_FOUND');
    });

    it('refuses an image it does not cache with IMAGE_NOT_CACHED', async () => {
      const req = { ...spawnRequest(newId('bk')), imageSha256: 'f'.repeat(64) };
      assert.equal(await errorCode(api.spawn(req)), 'IMAGE_NOT_CACHED');
    });

    it('destroys idempotently', async () => {
      const id = newId('bk');
      await api.spawn(spawnRequest(id));
      await api.destroy(id);
      await api.destroy(id);
      await api.destroy(newId('bk')); // never existed
      assert.equal(await errorCode(api.exec(id, { argv: ['true'], timeoutMs: 1000 }, {})), 'BUNKER_NOT_FOUND');
    });

    it('pauses and resumes a bunker; heartbeats report it paused; a second pause is INVALID_STATE', async () => {
      const id = newId('bk');
      await api.spawn(spawnRequest(id));
      created.add(id);
      await api.pause(id);
      assert.equal(await errorCode(api.pause(id)), 'INVALID_STATE');
      await worker.heartbeatNow();
      assert.deepEqual(
        controller.last.bunkers.find((b) => b.id === id),
        { id, status: 'paused' },
      );
      await api.resume(id);
      assert.equal(await errorCode(api.resume(id)), 'INVALID_STATE');
      const out: Buffer[] = [];
      await api.exec(id, { argv: ['echo', 'thawed'], timeoutMs: 5000 }, { onStdout: (c) => void out.push(c) });
      assert.equal(Buffer.concat(out).toString(), 'thawed\n');
      await api.destroy(id);
      assert.equal(await errorCode(api.pause(id)), 'BUNKER_NOT_FOUND');
    });

    it('reports cumulative cpu, memory and disk of the bunkers asked for, in one call; others are left out', async () => {
      const before = (await api.stats([mainBunker]))[mainBunker];
      assert.ok(before, 'the main bunker has stats');
      // A busy loop, and 4 MiB written to the bunker's disk.
      const outcome = await api.exec(
        mainBunker,
        {
          argv: ['sh', '-c', 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; head -c 4194304 /dev/zero > /root/usage.bin'],
          timeoutMs: 60_000,
        },
        {},
      );
      assert.equal(outcome.exitCode, 0);
      const ghost = newId('bk');
      const stats = await api.stats([mainBunker, ghost, mainBunker]);
      assert.deepEqual(Object.keys(stats), [mainBunker], 'a bunker the worker does not run is left out');
      const after = stats[mainBunker];
      assert.ok(after);
      assert.ok(after.cpuUsageNs > before.cpuUsageNs, `cpu ${before.cpuUsageNs} → ${after.cpuUsageNs}`);
      assert.ok(after.memoryBytes > 0, `memory ${after.memoryBytes}`);
      assert.ok(after.pids >= 1, `pids ${after.pids}`);
      assert.ok((after.diskUsedBytes ?? 0) >= 4 * 1024 * 1024, `disk ${after.diskUsedBytes}`);
      await api.remove(mainBunker, '/root/usage.bin', {});
      assert.deepEqual(await api.stats([]), {});
    });

    it('heartbeats carry the worker, its bunkers and its cached images', async () => {
      await worker.heartbeatNow();
      const hb = controller.last;
      assert.match(hb.worker_id, /^wk_[0-9a-z]{20}$/);
      assert.deepEqual(hb.isolations, ['container']);
      assert.ok(hb.capacity.cpu_millicores > 0 && hb.capacity.memory_mb > 0 && hb.capacity.disk_mb > 0);
      assert.equal(hb.capacity.memory_mb, Math.floor(totalmem() / 1048576), 'memory is not overcommitted by default');
      assert.equal(hb.capacity.cpu_millicores, cpus().length * 8000, 'CPU is offered 8×');
      assert.ok(hb.cached_images.includes(imageSha), 'the minimal image is reported as cached');
      assert.deepEqual(
        hb.bunkers.find((b) => b.id === mainBunker),
        { id: mainBunker, status: 'running' },
      );
    });

    it('--memory-overcommit offers that many MB per MB of RAM', async () => {
      const packed = new Worker({
        dataDir: join(tmp, 'w-overcommit'),
        imageDir: IMAGE_DIR,
        providers: [newProvider()],
        controller,
        name: 'overcommit',
        url: '',
        memoryOvercommit: 3,
        logger: { info: () => {}, warn: () => {} },
      });
      await packed.init();
      try {
        const hb = await packed.buildHeartbeat();
        assert.equal(hb.capacity.memory_mb, Math.floor((totalmem() / 1048576) * 3));
      } finally {
        await packed.stop();
      }
    });

    it('destroys the bunkers a heartbeat reply calls unknown', async () => {
      const doomed = newId('bk');
      await api.spawn(spawnRequest(doomed));
      controller.unknownNext = [doomed];
      await worker.heartbeatNow();
      assert.equal(await errorCode(api.exec(doomed, { argv: ['true'], timeoutMs: 1000 }, {})), 'BUNKER_NOT_FOUND');
      const onHost = await newProvider().list();
      assert.ok(!onHost.some((b) => b.id === doomed), 'the provider no longer runs it');
      await worker.heartbeatNow();
      assert.ok(!controller.last.bunkers.some((b) => b.id === doomed));
      // The others were left alone.
      assert.ok(controller.last.bunkers.some((b) => b.id === mainBunker && b.status === 'running'));
    });

    it('reports a bunker that died under it as stopped', async () => {
      const victim = newId('bk');
      await api.spawn(spawnRequest(victim));
      const stopped = new Promise<string>((resolve) => {
        onBunkerStopped = resolve;
      });
      await newProvider().destroy(victim); // behind the worker's back
      assert.equal(await stopped, victim);
      await worker.heartbeatNow();
      assert.deepEqual(
        controller.last.bunkers.find((b) => b.id === victim),
        { id: victim, status: 'stopped' },
      );
      assert.equal(await errorCode(api.exec(victim, { argv: ['true'], timeoutMs: 1000 }, {})), 'CHANNEL_CLOSED');
      await api.destroy(victim);
    });

    it('keeps its identity and reconnects to running bunkers after a restart', async () => {
      await worker.heartbeatNow();
      const idBefore = controller.last.worker_id;
      await api.writeFile(mainBunker, '/tmp/survivor.txt', Readable.from([Buffer.from('still here')]), { maxBytes: 100 });

      await stopWorker();
      await startWorker();

      assert.equal(worker.id, idBefore);
      assert.equal(controller.last.worker_id, idBefore, 'start() sends a heartbeat');
      assert.ok(controller.last.bunkers.some((b) => b.id === mainBunker && b.status === 'running'));
      const out: Buffer[] = [];
      const outcome = await api.exec(
        mainBunker,
        { argv: ['cat', '/tmp/survivor.txt'], timeoutMs: 10_000 },
        { onStdout: (c) => void out.push(c) },
      );
      assert.equal(outcome.exitCode, 0);
      assert.equal(Buffer.concat(out).toString(), 'still here');
    });

    it('without transit networking: createBridge is BRIDGE_FAILED, deleteBridge a no-op, a transit spawn refused', async () => {
      assert.equal(await errorCode(api.createBridge({ bridgeId: 'br_00000000000000000000', tenantId: 'tn_x' })), 'BRIDGE_FAILED');
      await api.deleteBridge('br_00000000000000000000');
      const req: SpawnRequest = {
        ...spawnRequest('bk_transit_nobridge'),
        networkProfile: 'transit',
        interfaces: [{ bridgeId: 'br_00000000000000000000', tenantId: 'tn_x', mac: '02:00:00:00:00:01', spoofGuard: true }],
      };
      assert.equal(await errorCode(api.spawn(req)), 'SPAWN_FAILED');
      assert.deepEqual((await worker.buildHeartbeat()).bridges, []);
      if (transport === 'http') {
        const res = await fetch(`${baseUrl}/v1/worker/bridges`, {
          method: 'POST',
          headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' },
          body: JSON.stringify({ bridgeId: 'br_00000000000000000000', tenantId: 'tn_x' }),
        });
        assert.equal(res.status, 401);
      }
    });

    if (transport === 'http')
      it('rejects a wrong worker token with 401', async () => {
        const res = await fetch(`${baseUrl}/v1/worker/bunkers/${mainBunker}/stat?path=/`, { headers: { authorization: 'Bearer wrong' } });
        assert.equal(res.status, 401);
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
        const none = await fetch(`${baseUrl}/v1/worker/bunkers/${mainBunker}/stat?path=/`);
        assert.equal(none.status, 401);
        const badClient = new HttpWorkerClient(baseUrl, 'wrong-token');
        try {
          assert.equal(await errorCode(badClient.stat(mainBunker, '/')), 'WORKER_UNAVAILABLE');
        } finally {
          badClient.close();
        }
      });

    it('aborts an exec when the caller gives up', async () => {
      const abort = new AbortController();
      let sawOutput!: () => void;
      const started = new Promise<void>((r) => {
        sawOutput = r;
      });
      const run = api.exec(
        mainBunker,
        { argv: ['sh', '-c', 'echo started; exec sleep 600'], timeoutMs: 700_000 },
        { onStdout: () => sawOutput(), signal: abort.signal },
      );
      await started;
      abort.abort();
      await assert.rejects(run);
      // Over HTTP the client gives up at once; wait until the worker's side of it is over too.
      await Promise.all(servedExecs);
      // The sleeper was killed: nothing of it is left in the bunker.
      const out: Buffer[] = [];
      await api.exec(
        mainBunker,
        { argv: ['sh', '-c', 'ps | grep "sleep 600" | grep -v grep || true'], timeoutMs: 10_000 },
        { onStdout: (c) => void out.push(c) },
      );
      assert.equal(Buffer.concat(out).toString(), '');
    });

    if (transport === 'http')
      it('reports WORKER_UNAVAILABLE when nothing listens', async () => {
        const dead = new HttpWorkerClient('http://127.0.0.1:1', TOKEN);
        try {
          assert.equal(await errorCode(dead.destroy(mainBunker)), 'WORKER_UNAVAILABLE');
        } finally {
          dead.close();
        }
      });
  });
}

describe('HttpControllerLink', () => {
  it('posts the heartbeat with the worker token and returns the reply', async () => {
    const { createServer } = await import('node:http');
    const seen: Array<{ url: string | undefined; auth: string | undefined; body: Heartbeat }> = [];
    const server = createServer((req, res) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        text += c;
      });
      req.on('end', () => {
        seen.push({ url: req.url, auth: req.headers.authorization, body: JSON.parse(text) as Heartbeat });
        if (seen.length === 1) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: true, heartbeat_interval_s: 10, unknown_bunkers: ['bk_x'], unknown_bridges: ['br_x'] }));
        } else {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { code: 'UNAUTHENTICATED', message: 'bad token' } }));
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as import('node:net').AddressInfo;
      const link = new HttpControllerLink(`http://127.0.0.1:${port}/`, 'wtok');
      const hb: Heartbeat = {
        worker_id: newId('wk'),
        name: 'w',
        url: 'http://w',
        isolations: ['container'],
        network_profiles: ['isolated'],
        capacity: { cpu_millicores: 1000, memory_mb: 1024, disk_mb: 1024 },
        cached_images: [],
        bunkers: [],
      };
      assert.deepEqual(await link.heartbeat(hb), {
        ok: true,
        heartbeat_interval_s: 10,
        unknown_bunkers: ['bk_x'],
        unknown_bridges: ['br_x'],
      });
      assert.equal(seen[0]?.url, '/v1/modules/scaibunker/heartbeat');
      assert.equal(seen[0]?.auth, 'Bearer wtok');
      assert.deepEqual(seen[0]?.body, hb);
      await assert.rejects(link.heartbeat(hb), /HTTP 401.*UNAUTHENTICATED/);
    } finally {
      server.close();
    }
  });
});
