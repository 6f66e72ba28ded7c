/**
 * Images through the HTTP API with real bakes: registered from Debian's docker-registry (pushed
 * with skopeo) and from a local OCI layout, baked by the bake job, stored in the blob store by
 * sha256, scanned; tenant, partner and platform visibility; local sources for platform admins
 * only, inside the import directory; failures with their reason; delete refused while in use;
 * a dead controller's bake taken over; the daily rescan and the scan queue.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { newId } from '@scaibunker/core';
import { blobKeys } from '../../src/blobs/BlobStore.js';
import { Controller } from '../../src/Controller.js';
import { lastRescanBoundary } from '../../src/images/ImageScanning.js';
import { addFakeWorker } from '../helpers/fakeWorker.js';
import { bunkerRow } from '../helpers/rows.js';
import { tenantWithKey, WORKER_TOKEN } from '../helpers/testController.js';
import { buildTestLayout, run, startRegistry } from './bakeFixtures.js';

const API = '/v1/modules/scaibunker';
const auth = (token: string) => ({ authorization: `Bearer ${token}` });

let dir: string;
let controller: Controller;
let adminKey: string;
let registry: Awaited<ReturnType<typeof startRegistry>>;
let layout: string;
let alice: { tenantId: string; key: string };
let bob: { tenantId: string; key: string };
let carol: { tenantId: string; key: string };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sb-images-'));
  const imports = join(dir, 'imports');
  await mkdir(imports);
  ({ layout } = await buildTestLayout(imports));
  registry = await startRegistry(join(dir, 'registry'));
  await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${registry.host}/test/busybox:v1`]);
  controller = await Controller.open({
    databaseUrl: `sqlite:${join(dir, 'db.sqlite')}`,
    blobDir: join(dir, 'blobs'),
    workerToken: WORKER_TOKEN,
    // The test runs each job itself; no background ticks.
    config: { imageBakeIntervalMs: 3_600_000, imageScanIntervalMs: 3_600_000, imageRescanCheckMs: 3_600_000 },
    images: { importDir: imports, workDir: join(dir, 'work'), agentBinary: '/bin/true', insecureRegistries: [registry.host] },
  });
  adminKey = (await controller.services.tenants.bootstrap()) as string;
  alice = await tenantWithKey(controller, 'alice', ['scaibunker:admin:tenant']);
  bob = await tenantWithKey(controller, 'bob', ['scaibunker:admin:tenant']);
  carol = await tenantWithKey(controller, 'carol', ['scaibunker:admin:tenant']);
});
after(async () => {
  await controller?.close();
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function register(key: string, body: Record<string, unknown>) {
  return controller.http.inject({ method: 'POST', url: `${API}/images`, headers: auth(key), payload: body });
}
async function getImage(key: string, id: string) {
  return controller.http.inject({ method: 'GET', url: `${API}/images/${id}`, headers: auth(key) });
}
/** Runs the bake job to completion (the registration also kicks it; both share one drain). */
async function baked(key: string, id: string) {
  await controller.bakery.drain();
  const res = await getImage(key, id);
  assert.equal(res.statusCode, 200, res.body);
  return res.json();
}

describe('tenant images from a registry', () => {
  let imageId: string;

  test('register → pending at once → the bake job makes it ready, stored by sha256 and scanned', async () => {
    const res = await register(alice.key, { name: 'busy', source: { type: 'oci', ref: `${registry.host}/test/busybox:v1` } });
    assert.equal(res.statusCode, 202, res.body);
    const created = res.json();
    imageId = created.id;
    assert.ok(['pending', 'baking'].includes(created.state));
    assert.equal(created.scope, 'tenant');
    const image = await baked(alice.key, imageId);
    assert.equal(image.state, 'ready', image.failure);
    assert.match(image.sha256, /^[0-9a-f]{64}$/);
    assert.ok(image.size_bytes > 0);
    assert.equal(image.progress, null);
    assert.deepEqual(await controller.blobs.stat(blobKeys.image(image.sha256)), { size: image.size_bytes, sha256: image.sha256 });
    assert.equal(image.scan.state, 'done');
    assert.equal(image.scan.scanner, 'scaibunker-sbom');
    assert.match(image.scan.note ?? '', /no advisory database/);
  });

  test('other tenants neither see nor get it; the owner lists it', async () => {
    const theirs = await getImage(bob.key, imageId);
    assert.equal(theirs.statusCode, 404);
    assert.equal(theirs.json().error.code, 'IMAGE_NOT_FOUND');
    const bobList = (await controller.http.inject({ method: 'GET', url: `${API}/images`, headers: auth(bob.key) })).json();
    assert.ok(!bobList.items.some((i: { id: string }) => i.id === imageId));
    const aliceList = (await controller.http.inject({ method: 'GET', url: `${API}/images`, headers: auth(alice.key) })).json();
    assert.ok(aliceList.items.some((i: { id: string }) => i.id === imageId));
    const del = await controller.http.inject({ method: 'DELETE', url: `${API}/images/${imageId}`, headers: auth(bob.key) });
    assert.equal(del.statusCode, 404, "deleting another tenant's image is a 404 like any unknown one");
  });

  test('the same name again is IMAGE_CONFLICT; a bad reference is VALIDATION_FAILED at once', async () => {
    const again = await register(alice.key, { name: 'busy', source: { type: 'oci', ref: `${registry.host}/test/busybox:v1` } });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().error.code, 'IMAGE_CONFLICT');
    const bad = await register(alice.key, { name: 'bad-ref', source: { type: 'oci', ref: 'UPPER CASE/ref' } });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'VALIDATION_FAILED');
    const badName = await register(alice.key, { name: '../x', source: { type: 'oci', ref: `${registry.host}/test/busybox:v1` } });
    assert.equal(badName.statusCode, 400);
  });

  test('a missing tag fails the image with its reason', async () => {
    const res = await register(alice.key, { name: 'nope', source: { type: 'oci', ref: `${registry.host}/test/busybox:missing` } });
    const image = await baked(alice.key, res.json().id);
    assert.equal(image.state, 'failed');
    assert.match(image.failure, /^SOURCE_NOT_FOUND: /);
    assert.equal(image.sha256, null);
  });

  test('delete is refused while a bunker uses the image, then removes row and bytes', async () => {
    const image = (await getImage(alice.key, imageId)).json();
    await controller.store.bunkers.insert(bunkerRow(alice.tenantId, { state: 'running', image: 'busy', image_sha256: image.sha256 }), {});
    const refused = await controller.http.inject({ method: 'DELETE', url: `${API}/images/${imageId}`, headers: auth(alice.key) });
    assert.equal(refused.statusCode, 409);
    assert.equal(refused.json().error.code, 'IMAGE_IN_USE');
    await controller.store.db.updateTable('bunkers').set({ state: 'terminated' }).where('image', '=', 'busy').execute();
    const ok = await controller.http.inject({ method: 'DELETE', url: `${API}/images/${imageId}`, headers: auth(alice.key) });
    assert.equal(ok.statusCode, 204, ok.body);
    assert.equal((await getImage(alice.key, imageId)).statusCode, 404);
    assert.equal(await controller.blobs.stat(blobKeys.image(image.sha256)), undefined);
  });
});

describe('scopes and local sources', () => {
  test('local sources: platform admins only, and only inside the import directory', async () => {
    const asTenant = await register(alice.key, { name: 'local', source: { type: 'oci', ref: `oci:${layout}:v1` } });
    assert.equal(asTenant.statusCode, 403);
    assert.equal(asTenant.json().error.code, 'PERMISSION_DENIED');
    for (const ref of ['oci:/etc:v1', `oci:${layout}/../../..:v1`]) {
      const outside = await register(adminKey, { name: 'outside', scope: 'platform', source: { type: 'oci', ref } });
      assert.equal(outside.statusCode, 400, ref);
      assert.equal(outside.json().error.code, 'VALIDATION_FAILED', ref);
    }
    const tar = await register(adminKey, { name: 'host-file', scope: 'platform', source: { type: 'tar', path: '/etc/passwd' } });
    assert.equal(tar.statusCode, 400);
  });

  test('a platform image from a local OCI layout is visible to every tenant', async () => {
    const res = await register(adminKey, { name: 'shared-busy', scope: 'platform', source: { type: 'oci', ref: `oci:${layout}:v1` } });
    assert.equal(res.statusCode, 202, res.body);
    const image = await baked(adminKey, res.json().id);
    assert.equal(image.state, 'ready', image.failure);
    assert.equal((await getImage(carol.key, image.id)).statusCode, 200);
    const asTenant = await controller.http.inject({ method: 'DELETE', url: `${API}/images/${image.id}`, headers: auth(carol.key) });
    assert.equal(asTenant.statusCode, 403, 'visible is not deletable');
  });

  test('platform and partner scope need scaibunker:admin; a partner image reaches exactly the tenants it is shared with', async () => {
    const denied = await register(alice.key, {
      name: 'mine-for-all',
      scope: 'platform',
      source: { type: 'oci', ref: `${registry.host}/test/busybox:v1` },
    });
    assert.equal(denied.statusCode, 403);
    const noShares = await register(adminKey, {
      name: 'partner-x',
      scope: 'partner',
      source: { type: 'oci', ref: `${registry.host}/test/busybox:v1` },
    });
    assert.equal(noShares.statusCode, 400);
    const unknown = await register(adminKey, {
      name: 'partner-x',
      scope: 'partner',
      shared_with: [`tn_${'0'.repeat(20)}`],
      source: { type: 'oci', ref: `${registry.host}/test/busybox:v1` },
    });
    assert.equal(unknown.json().error.code, 'TENANT_NOT_FOUND');
    const res = await register(adminKey, {
      name: 'partner-x',
      scope: 'partner',
      shared_with: [bob.tenantId],
      source: { type: 'oci', ref: `${registry.host}/test/busybox:v1` },
    });
    assert.equal(res.statusCode, 202, res.body);
    const id = res.json().id;
    assert.equal((await getImage(bob.key, id)).statusCode, 200);
    assert.equal((await getImage(carol.key, id)).statusCode, 404);
    assert.equal((await controller.store.images.findVisible(bob.tenantId, 'partner-x'))?.id, id);
    await controller.bakery.drain();
  });
});

describe('the OCI-sourced catalog', () => {
  test('registers each entry once as a lazy-pull platform image, baked from its reference', async () => {
    const entries = [{ name: 'catalog-busybox', ref: `${registry.host}/test/busybox:v1` }];
    assert.deepEqual(await controller.registerRegistryCatalog(entries), ['catalog-busybox']);
    assert.deepEqual(await controller.registerRegistryCatalog(entries), [], 'a second start registers nothing');
    const row = await controller.store.images.findVisible(carol.tenantId, 'catalog-busybox');
    assert.equal(row?.scope, 'platform');
    assert.equal(row?.lazy_pull, 1);
    const image = await baked(carol.key, row?.id as string);
    assert.equal(image.state, 'ready', image.failure);
  });
});

describe('bake and scan jobs', () => {
  test('a bake whose controller stopped reporting is taken over; a live one is not', async () => {
    const now = new Date();
    const rowFor = (name: string, seen: Date) => ({
      id: newId('im'),
      tenant_id: alice.tenantId,
      name,
      scope: 'tenant' as const,
      state: 'baking' as const,
      sha256: null,
      size_bytes: null,
      created_at: now.toISOString(),
      source: JSON.stringify({ type: 'oci', ref: `${registry.host}/test/busybox:v1` }),
      lazy_pull: 0,
      baker: 'ctl_dead',
      baker_seen_at: seen.toISOString(),
      updated_at: seen.toISOString(),
    });
    const stale = rowFor('orphan', new Date(now.getTime() - 10 * 60_000));
    const live = rowFor('in-progress-elsewhere', now);
    await controller.store.images.insert(stale);
    await controller.store.images.insert(live);
    const out = await controller.bakery.drain();
    assert.ok(out.baked.includes(stale.id));
    assert.ok(!out.baked.includes(live.id) && !out.failed.includes(live.id));
    assert.equal((await controller.store.images.getById(stale.id))?.state, 'ready');
    assert.equal((await controller.store.images.getById(live.id))?.state, 'baking');
    await controller.store.images.delete(live.id);
  });

  test('the daily rescan marks images scanned before 03:17 UTC; the queue rescans them from the blob store', async () => {
    assert.equal(lastRescanBoundary(new Date('2026-11-23T03:16:59Z')).toISOString(), '2026-11-22T03:17:00.000Z');
    assert.equal(lastRescanBoundary(new Date('2026-11-23T03:17:00Z')).toISOString(), '2026-11-23T03:17:00.000Z');
    assert.equal(lastRescanBoundary(new Date('2026-11-23T23:00:00Z')).toISOString(), '2026-11-23T03:17:00.000Z');
    const ready = (await controller.store.images.listVisible(alice.tenantId)).filter((i) => i.state === 'ready' && i.scan_state === 'done');
    assert.ok(ready.length > 0);
    // Nothing was scanned before today's boundary yet... as of a moment before the scans: none due.
    const marked = await controller.imageScanning.requestDailyRescans(new Date(Date.parse(ready[0]?.scanned_at as string) - 1000));
    assert.equal(marked, 0);
    const tomorrow = new Date(Date.now() + 24 * 3600_000);
    assert.ok((await controller.imageScanning.requestDailyRescans(tomorrow)) >= ready.length);
    assert.equal((await controller.store.images.getById(ready[0]?.id as string))?.scan_state, 'pending');
    const scanned = await controller.imageScanning.drain();
    assert.ok(scanned.scanned.includes(ready[0]?.id as string));
    const after = await controller.store.images.getById(ready[0]?.id as string);
    assert.equal(after?.scan_state, 'done');
    assert.ok((after?.scanned_at as string) > (ready[0]?.scanned_at as string));
  });
});

describe('image cache ledger, availability groups, peers', () => {
  test('the ledger follows heartbeats both ways; group members are asked to warm group images; peers are group members holding it', async () => {
    const fake = await addFakeWorker(controller, []);
    const ensured: string[] = [];
    const other = { id: newId('wk') };
    controller.registerLocalWorker(other.id, {
      ...fake.api,
      ensureImage: async (sha) => {
        ensured.push(sha);
        return { source: 'proxy', bytes: 1 };
      },
    });
    const heartbeat = (workerId: string, cached: string[], url: string) =>
      controller.services.workers.heartbeat({
        worker_id: workerId,
        name: workerId,
        url,
        isolations: ['container'],
        network_profiles: ['isolated'],
        capacity: { cpu_millicores: 1000, memory_mb: 1000, disk_mb: 1000 },
        cached_images: cached,
        bunkers: [],
      });
    await heartbeat(other.id, [], 'http://127.0.0.1:9/other');
    const image = (await controller.store.images.listVisible(carol.tenantId)).find((i) => i.name === 'shared-busy');
    assert.ok(image?.sha256);

    const group = await controller.http.inject({
      method: 'POST',
      url: `${API}/availability-groups`,
      headers: auth(adminKey),
      payload: { name: 'edge' },
    });
    assert.equal(group.statusCode, 201, group.body);
    const gid = group.json().id;
    for (const w of [fake.id, other.id]) {
      const r = await controller.http.inject({
        method: 'POST',
        url: `${API}/availability-groups/${gid}/workers`,
        headers: auth(adminKey),
        payload: { worker_id: w },
      });
      assert.equal(r.statusCode, 200, r.body);
    }
    const added = await controller.http.inject({
      method: 'POST',
      url: `${API}/availability-groups/${gid}/images`,
      headers: auth(adminKey),
      payload: { image_id: image.id },
    });
    assert.equal(added.statusCode, 200, added.body);
    // Both members lack it: both were asked to fetch it.
    assert.ok(ensured.includes(image.sha256), 'the member was asked to warm the image');

    // The member reports it cached → ready in the ledger, and a peer for the other member.
    await heartbeat(other.id, [image.sha256], 'http://127.0.0.1:9/other-v2');
    assert.equal((await controller.store.imageCache.get(other.id, image.sha256))?.state, 'ready');
    const peers = await controller.http.inject({
      method: 'GET',
      url: `${API}/peers/${image.sha256}?worker_id=${fake.id}`,
      headers: auth(WORKER_TOKEN),
    });
    assert.deepEqual(peers.json().items, [{ worker_id: other.id, url: 'http://127.0.0.1:9/other-v2' }]);
    const selfPeers = await controller.http.inject({
      method: 'GET',
      url: `${API}/peers/${image.sha256}?worker_id=${other.id}`,
      headers: auth(WORKER_TOKEN),
    });
    assert.deepEqual(selfPeers.json().items, [], 'a worker is not its own peer');
    const asTenant = await controller.http.inject({
      method: 'GET',
      url: `${API}/peers/${image.sha256}?worker_id=${fake.id}`,
      headers: auth(alice.key),
    });
    assert.equal(asTenant.statusCode, 403);

    // Its cache wiped: the next heartbeat drops the ledger row and asks for the image again.
    ensured.length = 0;
    await controller.store.db.updateTable('image_cache').set({ updated_at: '2000-01-01T00:00:00.000Z' }).execute();
    await heartbeat(other.id, [], 'http://127.0.0.1:9/other-v3');
    assert.ok(ensured.includes(image.sha256), 'the wiped member was asked to fetch it again');
    const row = await controller.store.imageCache.get(other.id, image.sha256);
    assert.ok(row && row.updated_at > '2000-01-01T00:00:00.000Z', 'the ledger row was rewritten by the new fetch');

    const shown = (
      await controller.http.inject({ method: 'GET', url: `${API}/availability-groups/${gid}`, headers: auth(adminKey) })
    ).json();
    assert.deepEqual(shown.workers.sort(), [fake.id, other.id].sort());
    assert.equal(shown.images[0].id, image.id);
  });
});
