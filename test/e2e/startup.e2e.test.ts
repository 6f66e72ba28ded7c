/**
 * `scaibunker serve` starting up as a new user runs it: a fresh data dir with no --image-dir
 * still has the built-in images (where set-up baked them); a bad option is refused before
 * anything starts; a start-up that fails half-way (networking and its flow logger already up)
 * leaves no process, mount or network object behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { adminKeyOf, freePort, mountsUnder, ServerProcess, tempDataDir } from './harness.js';

const CLI = new URL('../../packages/cli/bin/scaibunker.js', import.meta.url).pathname;
const dirs: Array<{ remove(): void }> = [];
after(() => {
  for (const d of dirs) d.remove();
});

/** Runs `scaibunker …` to its end. */
function runToExit(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

/** Processes whose command line names `needle` (the test's data dir): what a start-up left running. */
function processesNaming(needle: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(needle)) found.push(`${pid} ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Pids of every running flow logger (comm is cut to 15 characters). */
function flowLoggers(): Set<string> {
  const pids = new Set<string>();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('scaibunker-flow')) pids.add(pid);
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

test('a fresh data dir without --image-dir has the built-in images set-up baked', async () => {
  const data = tempDataDir();
  dirs.push(data);
  const server = await ServerProcess.start(['serve', '--port', String(await freePort()), '--data-dir', data.dir]);
  try {
    assert.match(server.output(), /images: .*minimal/);
    const res = await fetch(`${server.url}/v1/modules/scaibunker/images`, { headers: { authorization: `Bearer ${adminKeyOf(data.dir)}` } });
    const names = ((await res.json()) as { items: Array<{ name: string; state: string }> }).items.map((i) => `${i.name}:${i.state}`);
    assert.ok(names.includes('minimal:ready'), names.join(', '));
  } finally {
    await server.kill();
  }
});

test('a bad --isolations is refused before anything starts', async () => {
  const data = tempDataDir();
  dirs.push(data);
  const r = await runToExit(['serve', '--port', String(await freePort()), '--data-dir', data.dir, '--isolations', 'container,gvisor']);
  assert.equal(r.code, 1, r.output);
  assert.match(r.output, /--isolations: expected/);
  assert.deepEqual(processesNaming(data.dir), []);
  assert.deepEqual(readdirSync(data.dir), [], 'not even the database was made');
});

test('a start-up that fails after networking came up leaves nothing running', async () => {
  const data = tempDataDir();
  dirs.push(data);
  const before = flowLoggers();
  const r = await runToExit(
    [
      'serve',
      '--port',
      String(await freePort()),
      '--data-dir',
      data.dir,
      // microVMs asked for explicitly, with no guest kernel: the worker's providers fail after
      // the controller, the database and the bunker networks (flow logger included) are up.
      '--isolations',
      'microvm',
      '--network',
      'auto',
      '--network-name-prefix',
      'stu',
      '--bunker-subnet',
      '10.213.0.0/24',
    ],
    { SCAIBUNKER_GUEST_DIR: `${data.dir}/no-guest-here` },
  );
  assert.notEqual(r.code, 0, r.output);
  assert.match(r.output, /microvm isolation is not available/);
  // The flow logger had started: its closing line is printed when start-up undoes it.
  assert.match(r.output, /flow audit: scaibunker-flowlog: \d+ flows/);
  assert.deepEqual(processesNaming(data.dir), [], 'no child naming the data dir is left running');
  assert.deepEqual(
    [...flowLoggers()].filter((p) => !before.has(p)),
    [],
    'no flow logger is left running',
  );
  assert.deepEqual(mountsUnder(data.dir), []);
});

test('runtime flags that could not take effect are refused before anything starts', async () => {
  const data = tempDataDir();
  dirs.push(data);
  const port = String(await freePort());
  const stray = await runToExit(['serve', '--port', port, '--data-dir', data.dir, '--docker-host', 'unix:///nowhere.sock']);
  assert.equal(stray.code, 1, stray.output);
  assert.match(stray.output, /--docker-host is used only with --container-runtime docker/);
  const networked = await runToExit(['serve', '--port', port, '--data-dir', data.dir, '--container-runtime', 'docker']);
  assert.equal(networked.code, 1, networked.output);
  assert.match(networked.output, /add --network off/);
  assert.deepEqual(readdirSync(data.dir), [], 'nothing was made');
});

test('--vmm firecracker without a runnable Firecracker, or its flags astray, is refused before anything starts', async () => {
  const data = tempDataDir();
  dirs.push(data);
  const port = String(await freePort());
  const serve = (...args: string[]) => runToExit(['serve', '--port', port, '--data-dir', data.dir, ...args]);
  const missing = await serve('--vmm', 'firecracker', '--firecracker-bin', `${data.dir}/no-such-firecracker`);
  assert.equal(missing.code, 1, missing.output);
  assert.match(missing.output, /--vmm firecracker: the Firecracker binary .*no-such-firecracker does not run/);
  const notFirecracker = await serve('--vmm', 'firecracker', '--firecracker-bin', '/bin/true');
  assert.equal(notFirecracker.code, 1, notFirecracker.output);
  assert.match(notFirecracker.output, /not a Firecracker version/);
  const stray = await serve('--firecracker-bin', '/usr/bin/firecracker');
  assert.equal(stray.code, 1, stray.output);
  assert.match(stray.output, /--firecracker-bin is used only with --vmm firecracker/);
  const containersOnly = await serve('--vmm', 'firecracker', '--isolations', 'container');
  assert.match(containersOnly.output, /add microvm to --isolations/);
  const unknown = await serve('--vmm', 'cloud-hypervisor');
  assert.match(unknown.output, /--vmm: expected qemu or firecracker/);
  assert.deepEqual(readdirSync(data.dir), [], 'nothing was made');
});
