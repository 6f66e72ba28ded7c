/**
 * End to end through the SDK against a real `scaibunker serve --isolations container,proot`:
 * a proot bunker's life (exec, files, no network), what the API refuses for proot, and that a
 * terminated proot bunker leaves no process, cgroup, mount or directory on the worker.
 *
 *   node --import tsx --test test/e2e/proot.e2e.test.ts
 *
 * Needs root and proot (apt-get install proot); the nonet helper is built by the suite.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient, ValidationError } from '@scaibunker/sdk';
import { ProotProvider } from '@scaibunker/worker';
import { prootSkipReason } from '../../packages/worker/test/providers/support.js';
import { adminKeyOf, IMAGE_DIR, mountsUnder, ServerProcess, tempDataDir } from './harness.js';

/**
 * Live host pids whose real uid is `uid`. A zombie is not one: killed tracees whose proot died
 * first are reparented to this machine's PID 1, which reaps them when it gets to it.
 */
function processesOfUid(uid: number): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) === uid && !/^State:\s+Z/m.test(status)) out.push(Number(pid));
    } catch {
      /* gone */
    }
  }
  return out;
}

describe('proot bunkers through scaibunker serve, end to end', { skip: prootSkipReason() }, () => {
  let data: { dir: string; remove(): void } | undefined;
  let server: ServerProcess | undefined;
  let tenant: ScaiBunkerClient;
  const created: Bunker[] = [];
  const workerDir = () => join((data as { dir: string }).dir, 'worker');

  before(async () => {
    data = tempDataDir();
    chmodSync(data.dir, 0o701); // proot's bunker uids traverse it (init refuses otherwise)
    server = await ServerProcess.start([
      'serve',
      '--port',
      '0',
      '--data-dir',
      data.dir,
      '--image-dir',
      IMAGE_DIR,
      '--isolations',
      'container,proot',
    ]);
    tenant = new ScaiBunkerClient({ baseUrl: server.url, apiKey: adminKeyOf(data.dir) });
  });

  after(async () => {
    for (const b of created) await b.terminate().catch(() => {});
    await server?.kill();
    if (data) {
      const left = new ProotProvider({ dataDir: workerDir() });
      for (const b of await left.list().catch(() => [])) await left.destroy(b.id).catch(() => {});
      await left.shutdown();
      if ((await mountsUnder(data.dir)).length === 0) data.remove();
      else console.error(`[proot.e2e] mounts left under ${data.dir}: not removing it`);
    }
  });

  test('a proot bunker runs execs and files, has no network, and leaves nothing once terminated', async () => {
    const b = await Bunker.create({ image: 'minimal', isolation: 'proot' }, tenant);
    created.push(b);
    assert.equal(b.info.isolation, 'proot');
    const id = await b.exec(['id', '-u']);
    assert.equal(id.stdout, '0\n', 'root inside');
    await b.files.write('/root/note.txt', 'kept on the bunker disk\n');
    assert.equal((await b.files.read('/root/note.txt')).toString(), 'kept on the bunker disk\n');
    const net = await b.exec(['sh', '-c', 'nc 127.0.0.1 22 </dev/null; echo rc=$?']);
    assert.match(net.stderr, /Address family not supported/);
    assert.match(net.stdout, /rc=1/);

    const dir = join(workerDir(), 'proot', 'bunkers', b.id);
    const meta = JSON.parse(readFileSync(join(dir, 'bunker.json'), 'utf8')) as { uid: number; cgroup: string };
    assert.ok(processesOfUid(meta.uid).length > 0, 'proot and the agent run as the bunker uid');
    await b.terminate();
    assert.equal(existsSync(dir), false, 'the bunker dir is gone');
    assert.deepEqual(await mountsUnder(dir), [], 'its disk is unmounted');
    assert.deepEqual(processesOfUid(meta.uid), [], 'no process of its uid is left');
    assert.equal(
      existsSync(join('/sys/fs/cgroup/memory', meta.cgroup)) || existsSync(join('/sys/fs/cgroup', meta.cgroup)),
      false,
      'its cgroup is gone',
    );
  });

  test('what proot cannot give is refused before placement', async () => {
    await assert.rejects(
      Bunker.create({ image: 'minimal', isolation: 'proot', network_profile: 'unrestricted' }, tenant),
      (e: unknown) => e instanceof ValidationError && /only the isolated network profile/.test(e.message),
    );
    await assert.rejects(
      Bunker.create({ image: 'minimal', isolation: 'proot', lifecycle: 'persistent' }, tenant),
      (e: unknown) => e instanceof ValidationError && /cannot be persistent/.test(e.message),
    );
  });
});
