/**
 * `scaibunker certify`: the conformance suite on this host's providers, reported as one JSON
 * document; a provider failing a check makes it exit 1. Kept fast with --only (a subset of the
 * checks) on container bunkers. Needs root and the `minimal` image (scripts/build-images.sh).
 *
 *   node --import tsx --test packages/cli/test/certify.test.ts
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { CertifyReport } from '@scaibunker/worker';

const CLI = new URL('../bin/scaibunker.js', import.meta.url).pathname;
const SAMPLE_PLUGIN = new URL('../../../examples/provider-plugin/index.js', import.meta.url).href;
const isRoot = process.getuid?.() === 0;
const dir = mkdtempSync('/tmp/sbcertify-');
after(() => rmSync(dir, { recursive: true, force: true }));

function certify(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // certify runs node:test itself: it must not look like a file of this test run
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const child = spawn(CLI, ['certify', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test('certify --isolations container --json: one report with each check, the host facts, exit 0', {
  skip: isRoot ? false : 'needs root',
}, async () => {
  const r = await certify(['--isolations', 'container', '--only', '^(spawn|exec:)', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as CertifyReport;
  assert.equal(report.ok, true);
  assert.deepEqual(
    report.checks.map((c) => [c.suite, c.status]),
    [
      ['provider conformance: container: crun, runc fallback', 'pass'],
      ['provider conformance: container: crun, runc fallback', 'pass'],
    ],
  );
  assert.match(report.checks[0]?.name ?? '', /^spawn:/);
  assert.match(report.checks[1]?.name ?? '', /^exec:/);
  for (const c of report.checks) assert.ok(Number.isInteger(c.duration_ms) && c.duration_ms >= 0);
  assert.deepEqual(report.summary, { pass: 2, fail: 0, skip: 0 });
  assert.deepEqual(report.config.isolations, ['container']);
  assert.ok(report.host.kernel.length > 0);
  assert.match(report.host.cgroup_layout, /^(v1|v2|hybrid)$/);
  assert.ok(['absent', 'present', 'not accessible'].includes(report.host.virtualization.dev_kvm));
  assert.deepEqual(Object.keys(report.host.runtimes).sort(), ['crun', 'docker', 'firecracker', 'proot', 'qemu', 'runc']);
  assert.match(report.host.runtimes.crun ?? report.host.runtimes.runc ?? '', /\d+\.\d+/, 'the runtime that ran the checks has a version');
});

test('a plugin provider that breaks the contract fails its check, and certify exits 1', {
  skip: isRoot ? false : 'needs root',
}, async () => {
  // the sample plugin (a working container provider), but its list() never reports a bunker running
  const plugin = join(dir, 'liar.mjs');
  writeFileSync(
    plugin,
    `import Sample from '${SAMPLE_PLUGIN}';
export default class Liar extends Sample {
  async list() { return (await super.list()).map((b) => ({ ...b, running: false })); }
}
`,
  );
  const r = await certify(['--isolations', 'container', '--provider-module', plugin, '--only', '^spawn', '--json']);
  assert.doesNotMatch(r.stdout, /suite set-up/, 'the plugin loaded');
  assert.equal(r.code, 1, r.stderr);
  const report = JSON.parse(r.stdout) as CertifyReport;
  assert.equal(report.ok, false);
  assert.equal(report.checks.length, 1);
  const check = report.checks[0];
  assert.equal(check?.status, 'fail');
  assert.match(check?.suite ?? '', /plugin .*liar\.mjs/);
  assert.match(check?.detail ?? '', /running/);
  assert.deepEqual(report.summary, { pass: 0, fail: 1, skip: 0 });
});

test('text output names each check and the host; bad flags are refused', { skip: isRoot ? false : 'needs root' }, async () => {
  const r = await certify(['--isolations', 'container', '--only', '^spawn']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /PASS {2}spawn: /);
  assert.match(r.stdout, /kernel {9}\S+/);
  assert.match(r.stdout, /CERTIFIED: 1 passed, 0 failed, 0 skipped/);
  const bad = await certify(['--isolations', 'pods']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--isolations: expected 'auto' or a list of container, microvm/);
  const stray = await certify(['--firecracker-bin', '/usr/bin/firecracker']);
  assert.match(stray.stderr, /--firecracker-bin is used only with --vmm firecracker/);
});
