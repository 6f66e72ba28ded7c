/**
 * The provider contract (src/conformance, exported as `@scaibunker/worker/conformance`) run on
 * every provider this host can run: containers (crun and runc, each its own entry), Docker
 * containers (the Engine API; a private dockerd the suite starts, or SCAIBUNKER_DOCKER_HOST),
 * proot (no kernel isolation; its exceptions: no PID and no UTS namespace) and microVMs (QEMU
 * -M microvm; TCG here). Provider-specific checks (seccomp and mounts for containers; network,
 * uids and snapshots for proot; snapshots, kernels and the VMM for microVMs) live in their own files. *
 *   node --import tsx --test packages/worker/test/providers/conformance.test.ts
 *
 * Needs root. The microvm subject also needs QEMU and the guest kernel
 * (scripts/build-guest-kernel.sh, run by the suite; cached) and uses a memory snapshot for
 * its default shape, made once in `before`, so most of its bunkers start in well under a
 * second instead of a full boot.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { containerSubject, prootSubject } from '../../src/conformance/cgroupSubjects.js';
import { providerConformance } from '../../src/conformance/index.js';
import type { ContainerProvider } from '../../src/providers/container/ContainerProvider.js';
import { DockerProvider } from '../../src/providers/docker/DockerProvider.js';
import { MicrovmProvider } from '../../src/providers/microvm/MicrovmProvider.js';
import type { ProotProvider } from '../../src/providers/proot/ProotProvider.js';
import {
  dockerSkipReason,
  IMAGE_DIR,
  isRoot,
  microvmSkipReason,
  minimalImage,
  type PrivateDockerd,
  prootSkipReason,
  sh,
  startPrivateDockerd,
} from './support.js';

const image = () => {
  const img = minimalImage();
  return { sha256: img.sha256, path: join(IMAGE_DIR, img.file) };
};

/** The container provider once per OCI runtime: crun (the default) and runc (its fallback), each forced. */
for (const runtime of ['crun', 'runc'] as const) {
  providerConformance<ContainerProvider>(
    containerSubject({
      name: `container (${runtime})`,
      skip: isRoot ? false : 'needs root',
      idPrefix: runtime === 'crun' ? 'cf' : 'cr',
      runtime,
      image,
      async prepare(p) {
        assert.equal(p.runtimeName, runtime, `the provider runs ${runtime}`);
      },
    }),
  );
}

let dockerd: PrivateDockerd | undefined;
const dockerSkip = dockerSkipReason();
providerConformance<DockerProvider>({
  name: 'docker',
  skip: dockerSkip,
  idPrefix: 'cd',
  async setup() {
    dockerd = await startPrivateDockerd();
  },
  async teardown() {
    await dockerd?.stop();
  },
  make: (dataDir) => new DockerProvider({ dataDir, dockerHost: (dockerd as PrivateDockerd).host }),
  image,
  minMemoryMb: 16,
  smallMemoryMb: 48,
  smallDiskMb: 16,
  defaults: { memoryMb: 128, diskMb: 64 },
  footprint: (p, id) => [p.bunkerDir(id)],
  unsupported: {
    // overlay2 takes a size only on xfs with pquota (btrfs/zfs drivers too): not on this ext4 host
    diskLimit:
      process.env.SCAIBUNKER_DOCKER_DISK_QUOTA === '1'
        ? undefined
        : "the daemon's storage driver enforces no size here (set SCAIBUNKER_DOCKER_DISK_QUOTA=1 when it does)",
  },
});

providerConformance<ProotProvider>(prootSubject({ name: 'proot', skip: prootSkipReason(), idPrefix: 'cp', image }));

providerConformance<MicrovmProvider>({
  name: 'microvm',
  skip: microvmSkipReason(),
  // restores from the snapshot `prepare` makes, never builds one behind the tests' back
  make: (dataDir) => new MicrovmProvider({ dataDir, snapshots: 'manual' }),
  image,
  minMemoryMb: 128,
  smallMemoryMb: 128,
  smallDiskMb: 48,
  defaults: { memoryMb: 256, diskMb: 128 },
  footprint: (p, id) => [p.paths(id).dir, ...p.cgroupDirs(id)],
  async oomKills(_p, _id, c) {
    return Number((await sh(c, "awk '/^oom_kill /{print $2}' /proc/vmstat")).out.trim() || 0);
  },
  async prepare(p, spec) {
    const shape = { imageSha256: spec.imageSha256, imagePath: spec.imagePath, cpus: 1, memoryMb: spec.memoryMb, diskMb: spec.diskMb };
    const made = await p.snapshots.ensure(p.snapshotKey(shape), shape);
    assert.ok(made, 'snapshot of the default shape');
  },
});
