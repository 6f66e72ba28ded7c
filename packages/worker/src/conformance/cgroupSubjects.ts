/**
 * The built-in providers whose bunkers are cgroups on this host (crun/runc containers and
 * proot) as conformance subjects: one definition for the repository's own suite and for
 * `scaibunker certify`, which differ only in names, id prefixes and what they assert besides.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerProvider } from '../providers/container/ContainerProvider.js';
import { ProotProvider } from '../providers/proot/ProotProvider.js';
import type { ConformanceSubject } from './providerConformance.js';

type Naming<P extends ContainerProvider | ProotProvider> = Pick<ConformanceSubject<P>, 'name' | 'idPrefix' | 'skip' | 'image' | 'prepare'>;

/** A bunker's memory cgroup's OOM kill count, read on the host (v2 memory.events, v1 memory.oom_control). */
export async function cgroupOomKills(p: ContainerProvider | ProotProvider, id: string): Promise<number> {
  const mem = p.cgroupDir(id, 'memory') as string;
  const text = readFileSync(join(mem, p.cgroupLayout === 'v2' ? 'memory.events' : 'memory.oom_control'), 'utf8');
  return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
}

/** Small enough to be quick, big enough for the minimal image. */
const CGROUP_SHAPES = { minMemoryMb: 16, smallMemoryMb: 48, smallDiskMb: 16, defaults: { memoryMb: 128, diskMb: 64 } };

/** The crun/runc provider; `runtime` forces one (default: the provider's own choice). */
export function containerSubject(
  o: Naming<ContainerProvider> & { runtime?: 'crun' | 'runc' | undefined },
): ConformanceSubject<ContainerProvider> {
  const { runtime, ...naming } = o;
  return {
    ...naming,
    make: (dataDir) => new ContainerProvider({ dataDir, ...(runtime ? { runtime } : {}) }),
    ...CGROUP_SHAPES,
    footprint: (p, id) => [p.bunkerDir(id), ...p.cgroupDirs(id)],
    oomKills: cgroupOomKills,
  };
}

/** The proot provider, with the contract points it cannot meet (no PID or UTS namespace). */
export function prootSubject(o: Naming<ProotProvider>): ConformanceSubject<ProotProvider> {
  return {
    ...o,
    make: (dataDir) => new ProotProvider({ dataDir }),
    ...CGROUP_SHAPES,
    footprint: (p, id) => [p.bunkerDir(id), ...p.cgroupDirs(id)],
    oomKills: cgroupOomKills,
    unsupported: {
      pidNamespace: 'proot makes no PID namespace: the agent runs under its host pid',
      hostname: "proot makes no UTS namespace: the bunker sees the host's hostname",
    },
  };
}
