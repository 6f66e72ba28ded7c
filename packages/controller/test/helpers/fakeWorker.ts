import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { type NetworkProfile, newId } from '@scaibunker/core';
import { type BunkerStats, type SpawnRequest, type WorkerApi, WorkerError } from '@scaibunker/worker';
import { Controller, type ControllerOptions } from '../../src/Controller.js';
import { WORKER_TOKEN } from './testController.js';

export const FAKE_IMAGE_SHA = 'e'.repeat(64);

/**
 * A worker that records spawns, can be told to fail them, and runs nothing. `stats` answers the
 * readings scripted in `readings` (bunkers without one are left out, as a real worker leaves out
 * bunkers it does not run) and records each call; `failStats` makes it unreachable.
 */
export function fakeWorker(): {
  api: WorkerApi;
  /**
   * Where `openTunnel(bunker, port)` connects: bunker port → a TCP port on 127.0.0.1 of this
   * machine (a test's local server). A port not listed, or nothing listening, is PORT_NOT_LISTENING.
   */
  ports: Map<number, number>;
  /** Every openTunnel call, `bunker:port`. */
  tunnelCalls: string[];
  spawns: SpawnRequest[];
  failSpawns: { on: boolean };
  readings: Map<string, BunkerStats>;
  statsCalls: string[][];
  failStats: { on: boolean };
  /** Bridges it has: id → tenant. */
  bridges: Map<string, string>;
  /** `reject`: createBridge answers BRIDGE_FAILED; `unreachable`: WORKER_UNAVAILABLE. */
  failBridges: { mode: 'no' | 'reject' | 'unreachable' };
  bridgeCalls: string[];
  /**
   * Every snapshot call (`bunker:snapshot`). The answer is `snapshotBytes` long; `failSnapshots`
   * makes it SNAPSHOT_FAILED; while `holdSnapshots.gate` is set each call waits for it.
   */
  snapshotCalls: string[];
  snapshotBytes: { value: number };
  failSnapshots: { on: boolean };
  holdSnapshots: { gate: Promise<void> | undefined };
  destroyed: string[];
  /** Files written, `bunker:path` → bytes. */
  written: Map<string, Buffer>;
} {
  const written = new Map<string, Buffer>();
  const snapshotCalls: string[] = [];
  const snapshotBytes = { value: 4096 };
  const failSnapshots = { on: false };
  const holdSnapshots: { gate: Promise<void> | undefined } = { gate: undefined };
  const destroyed: string[] = [];
  const spawns: SpawnRequest[] = [];
  const failSpawns = { on: false };
  const readings = new Map<string, BunkerStats>();
  const statsCalls: string[][] = [];
  const failStats = { on: false };
  const bridges = new Map<string, string>();
  const failBridges: { mode: 'no' | 'reject' | 'unreachable' } = { mode: 'no' };
  const bridgeCalls: string[] = [];
  const ports = new Map<number, number>();
  const tunnelCalls: string[] = [];
  const unexpected = async () => {
    throw new Error('not expected of the fake worker');
  };
  const api: WorkerApi = {
    openTunnel: (bunkerId, port) => {
      tunnelCalls.push(`${bunkerId}:${port}`);
      const local = ports.get(port);
      if (local === undefined) return Promise.reject(new WorkerError('PORT_NOT_LISTENING', `nothing listens on port ${port}`));
      return new Promise<Duplex>((resolve, reject) => {
        const socket = connect(local, '127.0.0.1');
        socket.once('connect', () => {
          socket.removeAllListeners('error');
          resolve(socket);
        });
        socket.once('error', () => reject(new WorkerError('PORT_NOT_LISTENING', `nothing listens on port ${port}`)));
      });
    },
    spawn: async (req) => {
      if (failSpawns.on) throw new Error('the fake worker refuses to spawn');
      spawns.push(req);
    },
    destroy: async (id) => {
      destroyed.push(id);
    },
    snapshot: async (bunkerId, { snapshotId }) => {
      snapshotCalls.push(`${bunkerId}:${snapshotId}`);
      if (holdSnapshots.gate) await holdSnapshots.gate;
      if (failSnapshots.on) throw new WorkerError('SNAPSHOT_FAILED', 'the fake worker cannot write snapshots');
      return { snapshotId, sha256: 'a'.repeat(64), sizeBytes: snapshotBytes.value, format: 'container-tar' };
    },
    pause: async () => {},
    resume: async () => {},
    exec: unexpected,
    startProcess: unexpected,
    listProcesses: unexpected,
    getProcess: unexpected,
    processEvents: unexpected,
    writeStdin: unexpected,
    closeStdin: unexpected,
    signalProcess: unexpected,
    resizeProcess: unexpected,
    watchFiles: unexpected,
    readFile: unexpected,
    writeFile: async (bunkerId, path, data) => {
      const chunks: Buffer[] = [];
      for await (const c of data) chunks.push(Buffer.from(c as Buffer));
      const bytes = Buffer.concat(chunks);
      written.set(`${bunkerId}:${path}`, bytes);
      return { bytes: bytes.length };
    },
    stat: unexpected,
    list: unexpected,
    mkdir: unexpected,
    remove: unexpected,
    stats: async (ids) => {
      statsCalls.push([...ids]);
      if (failStats.on) throw new WorkerError('WORKER_UNAVAILABLE', 'the fake worker does not answer');
      const out: Record<string, BunkerStats> = {};
      for (const id of ids) {
        const r = readings.get(id);
        if (r) out[id] = { ...r };
      }
      return out;
    },
    createBridge: async ({ bridgeId, tenantId }) => {
      bridgeCalls.push(`create ${bridgeId}`);
      if (failBridges.mode === 'reject') throw new WorkerError('BRIDGE_FAILED', 'the fake worker refuses to make bridges');
      if (failBridges.mode === 'unreachable') throw new WorkerError('WORKER_UNAVAILABLE', 'the fake worker does not answer');
      bridges.set(bridgeId, tenantId);
    },
    deleteBridge: async (bridgeId) => {
      bridgeCalls.push(`delete ${bridgeId}`);
      bridges.delete(bridgeId);
    },
    // It caches FAKE_IMAGE_SHA (as its heartbeats say) and can fetch nothing else.
    ensureImage: async (sha256) => {
      if (sha256 === FAKE_IMAGE_SHA) return { source: 'cache', bytes: 1048576 };
      throw new WorkerError('IMAGE_NOT_CACHED', `the fake worker has no image ${sha256}`);
    },
  };
  return {
    api,
    ports,
    tunnelCalls,
    spawns,
    failSpawns,
    readings,
    statsCalls,
    failStats,
    bridges,
    failBridges,
    bridgeCalls,
    snapshotCalls,
    snapshotBytes,
    failSnapshots,
    holdSnapshots,
    destroyed,
    written,
  };
}

/**
 * Registers platform images (ready, cached by the fake worker) and the fake worker, online with
 * room for anything, offering `networkProfiles` (default: what a real worker offers, `isolated`).
 */
export async function addFakeWorker(
  controller: Controller,
  images: string[] = ['minimal', 'python'],
  networkProfiles: NetworkProfile[] = ['isolated'],
) {
  for (const name of images) {
    await controller.store.images.upsertPlatform({
      id: newId('im'),
      tenant_id: null,
      name,
      scope: 'platform',
      state: 'ready',
      sha256: FAKE_IMAGE_SHA,
      size_bytes: 1048576,
      created_at: new Date().toISOString(),
    });
  }
  const worker = { id: newId('wk'), ...fakeWorker() };
  controller.registerLocalWorker(worker.id, worker.api);
  await controller.services.workers.heartbeat({
    worker_id: worker.id,
    name: 'fake',
    url: '',
    isolations: ['container'],
    network_profiles: networkProfiles,
    capacity: { cpu_millicores: 100_000_000, memory_mb: 100_000_000, disk_mb: 100_000_000 },
    cached_images: [FAKE_IMAGE_SHA],
    bridges: [...worker.bridges.keys()],
    bunkers: [],
  });
  return worker;
}

/**
 * A real controller on a fresh SQLite file (in-process quota counters unless given others),
 * listening on a free port, with the fake worker: for SDK and CLI tests against the real API.
 */
export async function servedController(opts: Partial<ControllerOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-served-'));
  const controller = await Controller.open({
    databaseUrl: `sqlite:${join(dir, 'db.sqlite')}`,
    blobDir: join(dir, 'blobs'),
    workerToken: WORKER_TOKEN,
    // No background ticks during a test: the fake worker sends no further heartbeats.
    config: { monitorIntervalMs: 3_600_000, sweepIntervalMs: 3_600_000, usageIntervalMs: 3_600_000 },
    ...opts,
  });
  const adminKey = (await controller.services.tenants.bootstrap()) as string;
  const worker = await addFakeWorker(controller);
  const url = await controller.listen(0);
  return {
    controller,
    adminKey,
    worker,
    url,
    async close() {
      await controller.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
