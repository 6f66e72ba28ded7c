/**
 * The node:test file `scaibunker certify` runs (Certification.ts): the provider conformance
 * suite once per isolation of the config in $SCAIBUNKER_CERTIFY_CONFIG, on the providers this
 * host would run — the built-in ones, or the plugin module that replaces one. A provider that
 * cannot run here is one skipped suite with the reason (certify reports it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { containerSubject, prootSubject } from '../conformance/cgroupSubjects.js';
import { providerConformance } from '../conformance/providerConformance.js';
import { DockerProvider } from '../providers/docker/DockerProvider.js';
import { loadProviderModule, type PluginProviderOptions } from '../providers/loadProviderModule.js';
import { FirecrackerVmm } from '../providers/microvm/firecracker/FirecrackerVmm.js';
import { GuestAssets } from '../providers/microvm/GuestAssets.js';
import { MicrovmProvider } from '../providers/microvm/MicrovmProvider.js';
import { QemuVmm } from '../providers/microvm/QemuVmm.js';
import type { Provider } from '../providers/Provider.js';
import { CERTIFY_CONFIG_ENV, type CertifyConfig } from './CertifyConfig.js';

const config = JSON.parse(process.env[CERTIFY_CONFIG_ENV] ?? 'null') as CertifyConfig | null;
if (!config) throw new Error(`${CERTIFY_CONFIG_ENV} is not set: this file is run by scaibunker certify`);
const image = () => config.image;
const log = (m: string) => process.stderr.write(`[certify] ${m}\n`);

/** Plugin classes by isolation, checked as the worker checks them. */
const plugins = new Map<string, { path: string; make: (dataDir: string) => Provider }>();
for (const path of config.providerModules) {
  const probeDir = mkdtempSync('/tmp/sbcert-');
  try {
    const provider = await loadProviderModule(path, { dataDir: probeDir, log });
    const Cls = (await import(pathToFileURL(path).href)).default as new (o: PluginProviderOptions) => Provider;
    plugins.set(provider.isolation, { path, make: (dataDir) => new Cls({ dataDir, log }) });
  } finally {
    rmSync(probeDir, { recursive: true, force: true });
  }
}

const isRoot = process.getuid?.() === 0;

for (const isolation of config.isolations) {
  const plugin = plugins.get(isolation);
  if (plugin) {
    providerConformance({ name: `${isolation}: plugin ${plugin.path}`, idPrefix: 'ce', make: plugin.make, image });
  } else if (isolation === 'container' && config.containerRuntime === 'docker') {
    const dockerHost = config.dockerHost ?? process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
    providerConformance<DockerProvider>({
      name: `container: docker (${dockerHost})`,
      skip: isRoot ? false : 'needs root',
      idPrefix: 'ce',
      make: (dataDir) => new DockerProvider({ dataDir, dockerHost }),
      image,
      footprint: (p, id) => [p.bunkerDir(id)],
    });
  } else if (isolation === 'container') {
    const runtime = config.containerRuntime as 'auto' | 'crun' | 'runc';
    providerConformance(
      containerSubject({
        name: `container: ${runtime === 'auto' ? 'crun, runc fallback' : runtime}`,
        skip: isRoot ? false : 'needs root',
        idPrefix: 'ce',
        runtime: runtime === 'auto' ? undefined : runtime,
        image,
      }),
    );
  } else if (isolation === 'proot') {
    providerConformance(prootSubject({ name: 'proot (no kernel isolation)', skip: isRoot ? false : 'needs root', idPrefix: 'ce', image }));
  } else {
    const vmm = config.vmm === 'firecracker' ? new FirecrackerVmm(config.firecrackerBin ?? 'firecracker') : new QemuVmm();
    providerConformance<MicrovmProvider>({
      name: `microvm: ${config.vmm}`,
      skip: await microvmSkipReason(config),
      idPrefix: 'ce',
      // restores from the snapshot `prepare` makes (QEMU), never builds one behind the checks' back
      make: (dataDir) => new MicrovmProvider({ dataDir, snapshots: 'manual', vmm }),
      image,
      minMemoryMb: 128,
      smallMemoryMb: 128,
      smallDiskMb: 48,
      defaults: { memoryMb: 256, diskMb: 128 },
      footprint: (p, id) => [p.paths(id).dir, ...p.cgroupDirs(id)],
      async oomKills(_p, _id, c) {
        const { sh } = await import('../conformance/helpers.js');
        return Number((await sh(c, "awk '/^oom_kill /{print $2}' /proc/vmstat")).out.trim() || 0);
      },
      async prepare(p, spec) {
        if (p.snapshotMode === 'off') return; // a raw-disk VMM boots cold
        const shape = { imageSha256: spec.imageSha256, imagePath: spec.imagePath, cpus: 1, memoryMb: spec.memoryMb, diskMb: spec.diskMb };
        if (!(await p.snapshots.ensure(p.snapshotKey(shape), shape))) throw new Error('no memory snapshot of the default shape');
      },
    });
  }
}

async function microvmSkipReason(c: CertifyConfig): Promise<string | false> {
  if (!isRoot) return 'needs root';
  try {
    GuestAssets.load();
  } catch (e) {
    return `no guest kernel (scripts/build-guest-kernel.sh): ${(e as Error).message}`;
  }
  if (c.vmm === 'firecracker') return (await FirecrackerVmm.unavailableReason(c.firecrackerBin ?? 'firecracker')) ?? false;
  try {
    await new QemuVmm().version();
  } catch (e) {
    return `QEMU does not run: ${(e as Error).message.split('\n')[0]}`;
  }
  return false;
}
