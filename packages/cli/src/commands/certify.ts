/**
 * `scaibunker certify`: runs the provider conformance suite against this host's providers and
 * prints the report (each check with pass/fail/skip and its time, and the host's facts); exits
 * 1 when a check failed or none passed. The work is the worker package's Certification.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CertifyCheck, CertifyConfig, CertifyReport } from '@scaibunker/worker';
import type { Command } from 'commander';

const DEFAULT_IMAGE_DIR = '/var/lib/scaibunker/images';

type CertifiedIsolation = 'container' | 'microvm' | 'proot';

/** `auto` is what `--isolations auto` serves: the kernel-isolated ones (proot only when named). */
function isolationList(v: string): CertifiedIsolation[] {
  const names = v.split(',').map((s) => s.trim());
  if (v.trim() === 'auto') return ['container', 'microvm'];
  if (names.length && names.every((n) => n === 'container' || n === 'microvm' || n === 'proot'))
    return [...new Set(names)] as CertifiedIsolation[];
  throw new Error(`--isolations: expected 'auto' or a list of container, microvm, proot (got ${JSON.stringify(v)})`);
}

/** The catalog's `minimal` image (scripts/build-images.sh bakes it). */
function minimalImage(imageDir: string): { sha256: string; path: string } {
  const catalogPath = join(imageDir, 'catalog.json');
  if (!existsSync(catalogPath)) throw new Error(`no image catalog at ${catalogPath} (run scripts/setup.sh, or pass --image-dir)`);
  const catalog = JSON.parse(readFileSync(catalogPath, 'utf8')) as Array<{ name: string; sha256: string; file: string }>;
  const img = catalog.find((c) => c.name === 'minimal');
  if (!img) throw new Error(`the catalog at ${catalogPath} has no 'minimal' image`);
  return { sha256: img.sha256, path: join(imageDir, img.file) };
}

const MARK: Record<CertifyCheck['status'], string> = { pass: 'PASS', fail: 'FAIL', skip: 'SKIP' };

function checkLine(c: CertifyCheck): string {
  const ms = c.duration_ms >= 1000 ? `${(c.duration_ms / 1000).toFixed(1)} s` : `${c.duration_ms} ms`;
  return `  ${MARK[c.status]}  ${c.name} (${ms})${c.detail ? `\n        ${c.detail}` : ''}\n`;
}

function hostText(r: CertifyReport): string {
  const v = r.host.virtualization;
  const runtimes = Object.entries(r.host.runtimes)
    .map(([name, version]) => `    ${name.padEnd(12)} ${version ?? 'not found'}`)
    .join('\n');
  return [
    'host',
    `  kernel         ${r.host.kernel}`,
    `  cgroups        ${r.host.cgroup_layout}`,
    `  virtualization /dev/kvm ${v.dev_kvm}, module ${v.kvm_module}${v.accel ? `; VMs run on ${v.accel}` : ''} (${v.reason})`,
    '  runtimes',
    runtimes,
    '',
  ].join('\n');
}

export function registerCertifyCommand(program: Command): void {
  program
    .command('certify')
    .description(
      "Runs the provider conformance suite against this host's providers and reports each check and the host's facts (exit 1 on a failure)",
    )
    .option('--isolations <list>', "'auto' (container and microvm) or a list of container, microvm, proot", 'auto')
    .option('--container-runtime <name>', 'container bunkers on auto (crun, runc fallback), crun, runc or docker', 'auto')
    .option(
      '--docker-host <url>',
      'the Docker daemon for --container-runtime docker (default $DOCKER_HOST, else unix:///var/run/docker.sock)',
    )
    .option('--vmm <name>', 'microVMs on qemu (default) or firecracker', 'qemu')
    .option('--firecracker-bin <path>', "the Firecracker binary for --vmm firecracker (default 'firecracker' on PATH)")
    .option(
      '--provider-module <path>',
      'certify a plugin provider instead of the built-in of its isolation (repeatable)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option('--image-dir <dir>', `the image catalog holding 'minimal' (default $SCAIBUNKER_IMAGE_DIR, else ${DEFAULT_IMAGE_DIR})`)
    .option(
      '--only <pattern>',
      'run only the checks whose name matches this regular expression (repeatable)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option('--json', 'print one JSON document (the report) instead of text')
    .action(
      async (o: {
        isolations: string;
        containerRuntime: string;
        dockerHost?: string;
        vmm: string;
        firecrackerBin?: string;
        providerModule: string[];
        imageDir?: string;
        only: string[];
        json?: boolean;
      }) => {
        if (!['auto', 'crun', 'runc', 'docker'].includes(o.containerRuntime))
          throw new Error(`--container-runtime: expected auto, crun, runc or docker (got ${JSON.stringify(o.containerRuntime)})`);
        if (o.vmm !== 'qemu' && o.vmm !== 'firecracker')
          throw new Error(`--vmm: expected qemu or firecracker (got ${JSON.stringify(o.vmm)})`);
        if (o.dockerHost && o.containerRuntime !== 'docker') throw new Error('--docker-host is used only with --container-runtime docker');
        if (o.firecrackerBin && o.vmm !== 'firecracker') throw new Error('--firecracker-bin is used only with --vmm firecracker');
        for (const p of o.only) {
          try {
            new RegExp(p);
          } catch (e) {
            throw new Error(`--only: not a regular expression: ${(e as Error).message}`);
          }
        }
        const config: CertifyConfig = {
          isolations: isolationList(o.isolations),
          containerRuntime: o.containerRuntime as CertifyConfig['containerRuntime'],
          ...(o.dockerHost ? { dockerHost: o.dockerHost } : {}),
          vmm: o.vmm,
          ...(o.firecrackerBin ? { firecrackerBin: resolve(o.firecrackerBin) } : {}),
          providerModules: o.providerModule.map((p) => resolve(p)),
          image: minimalImage(resolve(o.imageDir ?? process.env.SCAIBUNKER_IMAGE_DIR ?? DEFAULT_IMAGE_DIR)),
        };
        const { Certification } = await import('@scaibunker/worker');
        let suite = '';
        const report = await new Certification(config).run({
          ...(o.only.length ? { only: o.only } : {}),
          onCheck: (c) => {
            if (o.json) return;
            if (c.suite !== suite) {
              suite = c.suite;
              process.stdout.write(`${suite}\n`);
            }
            process.stdout.write(checkLine(c));
          },
        });
        if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        else {
          process.stdout.write(`\n${hostText(report)}`);
          const s = report.summary;
          process.stdout.write(
            `\n${report.ok ? 'CERTIFIED' : 'NOT CERTIFIED'}: ${s.pass} passed, ${s.fail} failed, ${s.skip} skipped in ${(report.duration_ms / 1000).toFixed(1)} s\n`,
          );
        }
        if (!report.ok) process.exitCode = 1;
      },
    );
}
