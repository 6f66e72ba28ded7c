/**
 * Plugin providers (`--provider-module`): loading checks the contract and names what is missing;
 * the sample plugin (examples/provider-plugin, a wrapper around the crun provider) passes the
 * exported conformance suite.
 *
 *   node --import tsx --test packages/worker/test/providers/plugin.test.ts
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { providerConformance } from '../../src/conformance/index.js';
import type { ContainerProvider } from '../../src/providers/container/ContainerProvider.js';
import { createProviders } from '../../src/providers/createProviders.js';
import { loadProviderModule, type PluginProviderOptions } from '../../src/providers/loadProviderModule.js';
import { IMAGE_DIR, isRoot, minimalImage, REPO } from './support.js';

const SAMPLE = join(REPO, 'examples/provider-plugin/index.js');

describe('--provider-module loading', () => {
  const dir = mkdtempSync('/tmp/sbplug-');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const opts = { dataDir: dir, log: () => {} };
  const mod = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  test('a module without a default export class is refused', async () => {
    await assert.rejects(
      loadProviderModule(mod('none.mjs', 'export const x = 1;\n'), opts),
      /default export must be a class.*no default export/,
    );
    await assert.rejects(loadProviderModule(mod('obj.mjs', 'export default {};\n'), opts), /default export must be a class.*object/);
    await assert.rejects(loadProviderModule(join(dir, 'missing.mjs'), opts), /cannot load it/);
  });

  test('the error names every missing method and a bad isolation', async () => {
    const p = mod('half.mjs', "export default class Half { isolation = 'pods'; init() {} spawn() {} list() {} }\n");
    await assert.rejects(loadProviderModule(p, opts), (e: Error) => {
      assert.match(
        e.message,
        /Half does not implement the provider contract: missing destroy\(\), pause\(\), resume\(\), isPaused\(\), stats\(\), writeLayer\(\), health\(\), shutdown\(\)/,
      );
      assert.match(e.message, /isolation \(one of 'container', 'microvm', 'proot', got "pods"\)/);
      return true;
    });
    await assert.rejects(createProviders({ dataDir: dir, isolations: 'auto', providerModules: [p] }), /missing destroy\(\)/);
  });

  test('a throwing constructor is reported', async () => {
    const p = mod('boom.mjs', "export default class Boom { constructor() { throw new Error('no licence'); } }\n");
    await assert.rejects(loadProviderModule(p, opts), /constructing Boom failed: no licence/);
  });

  test('the sample plugin loads and replaces the built-in container provider', { skip: isRoot ? false : 'needs root' }, async () => {
    const providers = await createProviders({ dataDir: dir, isolations: 'container', providerModules: [SAMPLE], log: () => {} });
    assert.equal(providers.length, 1);
    assert.equal(providers[0]?.isolation, 'container');
    assert.match((await providers[0]?.health())?.runtime ?? '', /^plugin\(/);
    await providers[0]?.shutdown();
  });
});

let logged: string[] = [];
/** The sample's class, imported as the worker imports it (its instances wrap a ContainerProvider). */
const Sample = (await import(pathToFileURL(SAMPLE).href)).default as new (o: PluginProviderOptions) => ContainerProvider;

providerConformance<ContainerProvider>({
  name: 'plugin (examples/provider-plugin)',
  skip: isRoot ? false : 'needs root',
  idPrefix: 'cp',
  make: (dataDir) => new Sample({ dataDir, log: (m) => logged.push(m) }),
  image: () => {
    const img = minimalImage();
    return { sha256: img.sha256, path: join(IMAGE_DIR, img.file) };
  },
  footprint: (p, id) => [p.bunkerDir(id), ...p.cgroupDirs(id)],
  async teardown() {
    assert.ok(
      logged.some((l) => l.startsWith('plugin: spawned')),
      'the plugin saw the spawns',
    );
    logged = [];
  },
});
