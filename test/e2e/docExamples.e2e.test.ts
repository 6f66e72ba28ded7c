/**
 * The examples in the README and the docs run as written against a fresh `serve` (only the
 * server's address and key are the test's): the README's CLI, TypeScript and Python
 * quickstarts, docs/SDK.md's first example and docs/CLI.md's first session.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminKeyOf, destroyLeftoverBunkers, freePort, IMAGE_DIR, mountsUnder, ServerProcess, tempDataDir } from './harness.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/bin/scaibunker.js');

/** The fenced blocks of a language in a markdown file, in order. */
function blocks(file: string, lang: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1] as string);
}

describe('documentation examples', () => {
  const data = tempDataDir();
  let server: ServerProcess;
  let key = '';
  /** A scratch dir holding a `scaibunker` and an `npx` on PATH that run this checkout's CLI. */
  const work = join(data.dir, 'work');
  const env = () => ({
    ...process.env,
    PATH: `${join(work, 'bin')}:${process.env.PATH}`,
    SCAIBUNKER_URL: server.url,
    SCAIBUNKER_API_KEY: key,
    KEY: key,
  });
  const at = (code: string) => code.replaceAll('http://127.0.0.1:8080', server.url);

  before(async () => {
    server = await ServerProcess.start(['serve', '--port', String(await freePort()), '--data-dir', data.dir, '--image-dir', IMAGE_DIR]);
    key = adminKeyOf(data.dir);
    mkdirSync(join(work, 'bin'), { recursive: true });
    const shim = `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`;
    writeFileSync(join(work, 'bin', 'scaibunker'), shim);
    // `npx scaibunker …` in the README: the same CLI.
    writeFileSync(join(work, 'bin', 'npx'), `#!/bin/sh\n[ "$1" = scaibunker ] && shift\nexec ${process.execPath} ${CLI} "$@"\n`);
    chmodSync(join(work, 'bin', 'scaibunker'), 0o755);
    chmodSync(join(work, 'bin', 'npx'), 0o755);
  });
  after(async () => {
    // Examples that leave bunkers running (the README's microVM line) are ended here.
    if (server) {
      const api = `${server.url}/v1/modules/scaibunker`;
      const auth = { authorization: `Bearer ${key}` };
      const page = (await (await fetch(`${api}/bunkers?limit=200`, { headers: auth })).json()) as { items: Array<{ id: string }> };
      for (const b of page.items) await fetch(`${api}/bunkers/${b.id}`, { method: 'DELETE', headers: auth });
    }
    await server?.kill();
    const orphans = await destroyLeftoverBunkers(data.dir);
    const left = mountsUnder(data.dir);
    data.remove();
    assert.deepEqual(left, []);
    assert.deepEqual(orphans, []);
  });

  /** Runs a TypeScript example from inside the repository (so @scaibunker/sdk resolves). */
  const runTs = (code: string, prelude = '') => {
    const file = join(ROOT, 'test', 'e2e', `.doc-example-${process.pid}-${Date.now()}.mts`);
    writeFileSync(file, `${prelude}${at(code)}`);
    try {
      return spawnSync(process.execPath, ['--import', 'tsx', file], { env: env(), encoding: 'utf8', timeout: 120_000 });
    } finally {
      rmSync(file, { force: true });
    }
  };
  const runSh = (script: string) =>
    spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd: work, env: env(), encoding: 'utf8', timeout: 120_000 });

  test("docs/SDK.md's first example", () => {
    const r = runTs(blocks('docs/SDK.md', 'ts')[0] as string);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^0 42\n/);
  });

  test("the README's TypeScript quickstart", () => {
    const r = runTs(blocks('README.md', 'ts')[0] as string, 'const apiKey = process.env.SCAIBUNKER_API_KEY;\n');
    assert.equal(r.status, 0, r.stderr);
  });

  test("the README's Python quickstart", () => {
    const code = at(blocks('README.md', 'python')[0] as string);
    const r = spawnSync('python3', ['-c', `import os\napi_key = os.environ["SCAIBUNKER_API_KEY"]\n${code}`], {
      env: { ...env(), PYTHONPATH: join(ROOT, 'packages/sdk-python') },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^0 42\n/);
  });

  test("the README's CLI session (bunker ids filled in as a user would)", () => {
    // The README shows `bk_…` where the id printed by create goes, and `./data.csv` as the user's file.
    const lines = (blocks('README.md', 'sh').find((b) => b.includes('bunker create')) as string)
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('export SCAIBUNKER_API_KEY'))
      .map((l) => l.replace(/\s+#.*$/, ''));
    const script = [
      'echo a,b > data.csv',
      ...lines.map((l) => (l.includes('bunker create --image python') ? `ID=$(${l})` : l.replaceAll('bk_…', '"$ID"'))),
      'npx scaibunker bunker ls --json > /dev/null',
    ].join('\n');
    const r = runSh(script);
    assert.equal(r.status, 0, `${r.stderr}\n--- script ---\n${script}`);
    assert.match(r.stdout, /42/);
  });

  test("docs/CLI.md's first session (the interactive shell left out)", () => {
    const session = (blocks('docs/CLI.md', 'sh')[0] as string)
      .split('\n')
      .filter((l) => !l.startsWith('export ') && !l.includes('bunker shell'));
    const r = runSh(['head -c 1000 /dev/urandom > train.csv', ...session, 'test "$(cat report.txt)" = 1000'].join('\n'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /42/);
  });
});
