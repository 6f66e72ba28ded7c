/**
 * The network fields of the spawn contract, without root or images: the worker's HTTP schema
 * carries `networkProfile`, `networkAllowlist` and `bandwidthMbit` through to the WorkerApi and
 * refuses bad values, and validateSpec keeps refusing every profile but `isolated` (providers
 * give bunkers no network yet) while checking the other fields.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HttpWorkerClient } from '../../src/http/HttpWorkerClient.js';
import { WorkerHttpServer } from '../../src/http/WorkerHttpServer.js';
import type { BunkerSpec } from '../../src/providers/Provider.js';
import { validateSpec } from '../../src/providers/validateSpec.js';
import type { SpawnRequest, WorkerApi } from '../../src/WorkerApi.js';

const TOKEN = 'spawn-contract-token-0123456789';
const SHA = 'a'.repeat(64);

const spec = (patch: Partial<BunkerSpec> = {}): BunkerSpec => ({
  id: 'bk_spec',
  imageSha256: SHA,
  imagePath: '/nonexistent/image.ext4',
  cpuMillicores: 1000,
  memoryMb: 256,
  diskMb: 256,
  hostname: 'bk-spec',
  networkProfile: 'isolated',
  ...patch,
});
const bounds = { minMemoryMb: 32, provider: 'test', socketPaths: [] };

describe('spawn contract: network fields', () => {
  const spawns: SpawnRequest[] = [];
  let server: WorkerHttpServer;
  let client: HttpWorkerClient;

  before(async () => {
    const api = new Proxy({} as WorkerApi, {
      get: (_t, prop) =>
        prop === 'spawn'
          ? async (req: SpawnRequest) => {
              spawns.push(req);
            }
          : async () => {
              throw new Error(`not expected: ${String(prop)}`);
            },
    });
    server = new WorkerHttpServer(api, TOKEN);
    client = new HttpWorkerClient(await server.listen(), TOKEN);
  });
  after(async () => {
    client?.close();
    await server?.close();
  });

  const request = (patch: Partial<SpawnRequest>): SpawnRequest => ({
    bunkerId: 'bk_contract',
    imageSha256: SHA,
    isolation: 'container',
    cpuMillicores: 1000,
    memoryMb: 256,
    diskMb: 256,
    networkProfile: 'isolated',
    hostname: 'bk-contract',
    ...patch,
  });

  test('every profile, the allowlist and the bandwidth reach the WorkerApi over HTTP', async () => {
    for (const networkProfile of ['isolated', 'registry', 'unrestricted'] as const)
      await client.spawn(request({ networkProfile, bandwidthMbit: 5 }));
    await client.spawn(request({ networkProfile: 'allowlisted', networkAllowlist: ['pypi.org', '*.example.com'] }));
    assert.deepEqual(
      spawns.map((s) => [s.networkProfile, s.networkAllowlist, s.bandwidthMbit]),
      [
        ['isolated', undefined, 5],
        ['registry', undefined, 5],
        ['unrestricted', undefined, 5],
        ['allowlisted', ['pypi.org', '*.example.com'], undefined],
      ],
    );
  });

  test('an unknown profile or an out-of-range bandwidth is refused by the schema', async () => {
    const before = spawns.length;
    for (const bad of [{ networkProfile: 'bogus' }, { bandwidthMbit: 0 }, { bandwidthMbit: 10001 }] as Partial<SpawnRequest>[])
      await assert.rejects(client.spawn(request(bad)), JSON.stringify(bad));
    assert.equal(spawns.length, before);
  });

  test('validateSpec: only the profiles the provider offers pass; bandwidth and allowlist are checked', () => {
    validateSpec(spec(), bounds, 512);
    validateSpec(spec({ bandwidthMbit: 100 }), bounds, 512);
    for (const networkProfile of ['registry', 'unrestricted'] as const)
      assert.throws(
        () => validateSpec(spec({ networkProfile }), bounds, 512),
        /network profile \w+ is not offered by the test provider here/,
      );
    assert.throws(
      () => validateSpec(spec({ networkProfile: 'allowlisted', networkAllowlist: ['pypi.org'] }), bounds, 512),
      /network profile allowlisted is not offered/,
    );
    const networked = { ...bounds, networkProfiles: ['isolated', 'registry', 'allowlisted', 'unrestricted'] };
    validateSpec(spec({ networkProfile: 'registry' }), networked, 512);
    validateSpec(spec({ networkProfile: 'allowlisted', networkAllowlist: ['pypi.org'] }), networked, 512);
    assert.throws(() => validateSpec(spec({ networkProfile: 'allowlisted' }), networked, 512), /needs a non-empty networkAllowlist/);
    assert.throws(() => validateSpec(spec({ bandwidthMbit: 0 }), bounds, 512), /bandwidthMbit/);
    assert.throws(() => validateSpec(spec({ networkAllowlist: ['pypi.org'] }), bounds, 512), /only for the allowlisted profile/);
    assert.throws(
      () => validateSpec(spec({ networkProfile: 'allowlisted', networkAllowlist: ['https://pypi.org'] }), bounds, 512),
      /"https:\/\/pypi.org" is a URL/,
    );
  });
});
