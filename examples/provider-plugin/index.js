// A sample plugin provider for `scaibunker worker --provider-module examples/provider-plugin/index.js`
// (or `serve`): a thin wrapper that delegates every call to the built-in crun provider and logs
// the bunker lifecycle. A real plugin would talk to its own isolation technology instead.
import { join } from 'node:path';
import { ContainerProvider } from '@scaibunker/worker';

export default class LoggingContainerProvider {
  /** The isolation this provider offers: it replaces the worker's built-in `container` provider. */
  isolation = 'container';

  /** @param {{ dataDir: string, networking?: unknown, log: (m: string) => void }} options */
  constructor(options) {
    this.log = options.log;
    this.inner = new ContainerProvider({
      dataDir: join(options.dataDir, 'plugin'),
      ...(options.networking ? { networking: options.networking } : {}),
    });
  }

  init() {
    return this.inner.init();
  }

  async spawn(spec) {
    const b = await this.inner.spawn(spec);
    this.log(`plugin: spawned ${spec.id} (pid ${b.pid})`);
    return b;
  }

  async destroy(id) {
    await this.inner.destroy(id);
    this.log(`plugin: destroyed ${id}`);
  }

  pause(id) {
    return this.inner.pause(id);
  }

  resume(id) {
    return this.inner.resume(id);
  }

  isPaused(id) {
    return this.inner.isPaused(id);
  }

  stats(id) {
    return this.inner.stats(id);
  }

  writeLayer(id, out) {
    return this.inner.writeLayer(id, out);
  }

  list() {
    return this.inner.list();
  }

  async health() {
    const h = await this.inner.health();
    return { ...h, runtime: `plugin(${h.runtime})` };
  }

  shutdown() {
    return this.inner.shutdown();
  }

  // for the conformance test's footprint check
  bunkerDir(id) {
    return this.inner.bunkerDir(id);
  }

  cgroupDirs(id) {
    return this.inner.cgroupDirs(id);
  }
}
