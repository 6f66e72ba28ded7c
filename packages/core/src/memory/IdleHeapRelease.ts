import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';

/** When a server process gives back the heap a burst grew (see IdleHeapRelease). */
export interface IdleHeapReleaseOptions {
  /** How often the process's load is looked at (ms). */
  intervalMs: number;
  /** At most this share of the last interval spent running JavaScript or I/O callbacks is quiet. */
  quietUtilization: number;
  /** V8's young generation is released once it has grown to this many bytes. */
  minYoungBytes: number;
}

const DEFAULTS: IdleHeapReleaseOptions = { intervalMs: 5_000, quietUtilization: 0.05, minYoungBytes: 16 * 1024 * 1024 };

/**
 * Gives back to the system the memory a burst of work grew V8's heap to, once the process has
 * gone quiet.
 *
 * A burst — e.g. 2,000 bunkers created 8 at a time — grows V8's young generation to its maximum
 * (two 64 MiB semi-spaces on a host with this much memory), and V8 keeps it, and the pages it
 * frees, as long as nothing reduces memory: a process that then only answers heartbeats never
 * collects again, so ~100 MB stay resident for nothing (~50 KiB per idle bunker at 2,000). A
 * smaller young generation (`--max-semi-space-size`) would cap it but trades against the GC of
 * every busy workload. This waits instead: every `intervalMs` it looks at how busy the event loop
 * was since the last look, and when it was quiet and the young generation is at least
 * `minYoungBytes`, it runs the collection V8 runs before giving up on memory ("last resort": full,
 * compacting, shrinking the young generation and returning its free pages). That pause (tens of
 * ms on a 2,000-bunker heap) falls when nothing is waiting, and only after the young generation
 * grew again, so never twice in a row.
 */
export class IdleHeapRelease {
  private readonly options: IdleHeapReleaseOptions;
  private timer: NodeJS.Timeout | undefined;
  private lastLook = performance.eventLoopUtilization();

  constructor(
    options: Partial<IdleHeapReleaseOptions> = {},
    private readonly log: (line: string) => void = () => {},
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  start(): void {
    this.lastLook = performance.eventLoopUtilization();
    this.timer ??= setInterval(() => this.look(), this.options.intervalMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Releases when the loop was quiet since the last look and the young generation is big; true when it did. */
  look(): boolean {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, this.lastLook).utilization;
    this.lastLook = now;
    const young = youngGenerationBytes();
    if (busy > this.options.quietUtilization || young < this.options.minYoungBytes) return false;
    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    lastResortCollection();
    const ms = performance.now() - t0;
    this.lastLook = performance.eventLoopUtilization(); // the collection itself is no load
    const freedMb = (before - process.memoryUsage().rss) / 1024 / 1024;
    this.log(
      `released an idle heap: young generation was ${(young / 1024 / 1024).toFixed(0)} MB, ${freedMb.toFixed(0)} MB resident freed in ${ms.toFixed(0)} ms`,
    );
    return true;
  }
}

/** Bytes of memory V8's young generation holds (both semi-spaces and its large objects). */
export function youngGenerationBytes(): number {
  let bytes = 0;
  for (const space of v8.getHeapSpaceStatistics())
    if (space.space_name === 'new_space' || space.space_name === 'new_large_object_space') bytes += space.physical_space_size;
  return bytes;
}

/**
 * V8's memory-reducing collection. Node has no API for it; the `gc` V8 exposes with --expose-gc
 * takes this flavor. The flag is raised only while one new context is made (its `gc` is the
 * isolate's), so no other context sees a `gc`, and nothing of it is kept.
 */
function lastResortCollection(): void {
  const exposed = (globalThis as { gc?: (options: object) => void }).gc;
  const options = { type: 'major', execution: 'sync', flavor: 'last-resort' };
  if (exposed) {
    exposed(options);
    return;
  }
  v8.setFlagsFromString('--expose-gc');
  try {
    vm.runInNewContext('gc(options)', { options });
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
}
