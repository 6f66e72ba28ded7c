/**
 * The provider skeleton without root or a runtime: one destroy semantics (every step runs,
 * every failure reported, idempotent, tried without init), the spawn preamble's checks before
 * anything is created, and the per-id lock.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BunkerDestroyError } from '../../src/providers/BunkerDestroyError.js';
import { BunkerLifecycle, type SpawnHooks } from '../../src/providers/BunkerLifecycle.js';
import type { BunkerNetworking } from '../../src/providers/BunkerNetworking.js';
import { type BunkerSpec, ProviderError, type SpawnedBunker } from '../../src/providers/Provider.js';

const SHA = 'b'.repeat(64);

describe('BunkerLifecycle', () => {
  let dir: string;
  let imagePath: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-lifecycle-'));
    imagePath = join(dir, 'image.ext4');
    await writeFile(imagePath, '');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const spec = (patch: Partial<BunkerSpec> = {}): BunkerSpec => ({
    id: 'bk_life',
    imageSha256: SHA,
    imagePath,
    cpuMillicores: 1000,
    memoryMb: 256,
    diskMb: 256,
    hostname: 'bk-life',
    networkProfile: 'isolated',
    ...patch,
  });

  /** Hooks whose create records that it ran. */
  const hooks = (created: string[], exists = false): SpawnHooks => ({
    validate: () => {},
    exists: () => exists,
    create: async (s): Promise<SpawnedBunker> => {
      created.push(s.id);
      return { id: s.id, agentSocketPath: '/nowhere', pid: 1 };
    },
  });

  test('destroy runs every step after failures and reports each failed one', async () => {
    const life = new BunkerLifecycle({ isolation: 'container' });
    const ran: string[] = [];
    const err = await life
      .destroy('bk_one', () => [
        { step: 'kill', run: () => void ran.push('kill') },
        {
          step: 'cgroup',
          run: async () => {
            ran.push('cgroup');
            throw new Error('EBUSY');
          },
        },
        { step: 'umount', run: () => void ran.push('umount') },
        {
          step: 'network',
          run: () => {
            ran.push('network');
            throw new Error('netns busy');
          },
        },
        { step: 'files', run: () => void ran.push('files') },
      ])
      .then(
        () => assert.fail('destroy should have failed'),
        (e: unknown) => e,
      );
    assert.deepEqual(ran, ['kill', 'cgroup', 'umount', 'network', 'files']);
    assert.ok(err instanceof BunkerDestroyError);
    assert.ok(err instanceof ProviderError);
    assert.equal(err.code, 'DESTROY_INCOMPLETE');
    assert.deepEqual(
      err.failures.map((f) => [f.step, f.error.message]),
      [
        ['cgroup', 'EBUSY'],
        ['network', 'netns busy'],
      ],
    );
    assert.match(err.message, /^destroy bk_one incomplete: cgroup: EBUSY; network: netns busy$/);
  });

  test('destroy of an id that cannot exist touches nothing; a failing init does not stop it', async () => {
    let inits = 0;
    const life = new BunkerLifecycle({
      isolation: 'microvm',
      init: async () => {
        inits++;
        throw new Error('no QEMU');
      },
    });
    let stepsAsked = 0;
    const steps = () => {
      stepsAsked++;
      return [{ step: 'files', run: () => {} }];
    };
    await life.destroy('../../etc', steps);
    assert.equal(stepsAsked, 0);
    assert.equal(inits, 0);
    await life.destroy('bk_two', steps);
    assert.equal(stepsAsked, 1);
    assert.equal(inits, 1);
  });

  test('spawn checks, in order, before create: validation, existing bunker, image file, restore format and archive', async () => {
    const life = new BunkerLifecycle({ isolation: 'container' });
    const created: string[] = [];
    await assert.rejects(
      life.spawn(spec(), {
        ...hooks(created),
        validate: () => {
          throw new ProviderError('LIMIT_INVALID', 'too small');
        },
      }),
      { code: 'LIMIT_INVALID' },
    );
    await assert.rejects(life.spawn(spec(), hooks(created, true)), { code: 'SPAWN_FAILED', message: 'bunker bk_life already exists' });
    await assert.rejects(life.spawn(spec({ imagePath: join(dir, 'missing.ext4') }), hooks(created)), {
      code: 'SPAWN_FAILED',
      message: /image file .*missing\.ext4 not found/,
    });
    await assert.rejects(life.spawn(spec({ restore: { archivePath: imagePath, format: 'microvm-qcow2' } }), hooks(created)), {
      code: 'SNAPSHOT_CORRUPT',
      message: 'a container cannot start from a microvm-qcow2 snapshot (container-tar only)',
    });
    await assert.rejects(
      life.spawn(spec({ restore: { archivePath: join(dir, 'missing.tar'), format: 'container-tar' } }), hooks(created)),
      { code: 'SPAWN_FAILED', message: /snapshot archive .*missing\.tar not found/ },
    );
    assert.deepEqual(created, []);
    const spawned = await life.spawn(spec({ restore: { archivePath: imagePath, format: 'container-tar' } }), hooks(created));
    assert.equal(spawned.id, 'bk_life');
    assert.deepEqual(created, ['bk_life']);
  });

  test('spawn and destroy of one id never overlap; other ids do not wait', async () => {
    const life = new BunkerLifecycle({ isolation: 'container' });
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let entered!: () => void;
    const inCreate = new Promise<void>((r) => {
      entered = r;
    });
    const spawning = life.spawn(spec({ id: 'bk_a' }), {
      ...hooks([]),
      create: async (s) => {
        entered();
        await gate;
        order.push('spawn a done');
        return { id: s.id, agentSocketPath: '/nowhere', pid: 1 };
      },
    });
    await inCreate;
    const destroyA = life.destroy('bk_a', () => [{ step: 'files', run: () => void order.push('destroy a') }]);
    await life.destroy('bk_b', () => [{ step: 'files', run: () => void order.push('destroy b') }]);
    assert.deepEqual(order, ['destroy b']);
    release();
    await Promise.all([spawning, destroyA]);
    assert.deepEqual(order, ['destroy b', 'spawn a done', 'destroy a']);
  });

  test('network: none for `isolated`; a profile without the worker networking is refused; detach is a destroy step', async () => {
    const attached: string[] = [];
    const detached: string[] = [];
    const networking: BunkerNetworking = {
      profiles: ['unrestricted'],
      attach: async (s) => {
        attached.push(s.id);
        return { netnsPath: '/run/netns/x', resolvConfPath: '/etc/resolv.conf' };
      },
      detach: async (id) => void detached.push(id),
    };
    const bare = new BunkerLifecycle({ isolation: 'container' });
    assert.equal(await bare.attachNetwork(spec()), undefined);
    await assert.rejects(bare.attachNetwork(spec({ networkProfile: 'unrestricted' })), /needs the worker's networking/);
    await bare.detachNetworkStep('bk_n').run(); // nothing to detach: no error

    const life = new BunkerLifecycle({ isolation: 'container', networking });
    assert.equal(await life.attachNetwork(spec()), undefined);
    assert.equal((await life.attachNetwork(spec({ id: 'bk_n', networkProfile: 'unrestricted' })))?.netnsPath, '/run/netns/x');
    await life.destroy('bk_n', () => [life.detachNetworkStep('bk_n')]);
    assert.deepEqual([attached, detached], [['bk_n'], ['bk_n']]);
  });

  test('metadata round-trips; a missing or corrupt file reads as undefined; cgroup path under the parent', async () => {
    const life = new BunkerLifecycle({ isolation: 'container', cgroupParent: 'scaibunker-test' });
    const file = join(dir, 'meta.json');
    life.writeMeta(file, { id: 'bk_m', n: 1 });
    assert.deepEqual(life.readMeta(file), { id: 'bk_m', n: 1 });
    assert.equal(life.readMeta(join(dir, 'none.json')), undefined);
    await writeFile(file, '{not json');
    assert.equal(life.readMeta(file), undefined);
    assert.equal(life.cgroupPath('bk_m'), '/scaibunker-test/bk_m');
    assert.throws(() => new BunkerLifecycle({ isolation: 'container' }).cgroupPath('bk_m'), /without a cgroupParent/);
  });
});
