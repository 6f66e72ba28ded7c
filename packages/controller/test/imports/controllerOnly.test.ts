/**
 * A controller-only process loads no worker code: `@scaibunker/controller` depends on
 * `@scaibunker/core` for the worker contract (types, errors, routes and the HTTP client), never
 * on `@scaibunker/worker` with its providers and host networking.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, '..', '..');

/** Records every module URL the child resolves, then imports the controller's entry. */
const HOOK = `
let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  port.postMessage(resolved.url);
  return resolved;
}`;
const SCRIPT = `
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const seen = [];
port1.on('message', (url) => seen.push(url));
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(HOOK)}), { data: { port: port2 }, transferList: [port2] });
await import('@scaibunker/controller');
await new Promise((r) => setTimeout(r, 200));
port1.close();
process.stdout.write(JSON.stringify(seen));
`;

describe('controller entry', () => {
  it('declares no dependency on @scaibunker/worker', () => {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    assert.equal(pkg.dependencies?.['@scaibunker/worker'], undefined);
  });

  it('loads no worker, provider or network module', { timeout: 60_000 }, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
      cwd: pkgDir,
      maxBuffer: 64 * 1024 * 1024,
    });
    const urls = JSON.parse(stdout) as string[];
    // The hook saw the import (else this test proves nothing).
    assert.ok(
      urls.some((u) => u.endsWith('/packages/controller/src/Controller.ts')),
      'the controller was loaded',
    );
    assert.ok(
      urls.some((u) => u.includes('/packages/core/src/worker/')),
      'the worker contract came from core',
    );
    // Providers and host networking live in the worker package only (core's network/ is constants).
    const workerCode = urls.filter((u) => u.includes('/packages/worker/') || u.includes('/@scaibunker/worker/'));
    assert.deepEqual(workerCode, []);
  });
});
