#!/bin/sh
':' //; d=$(dirname "$(readlink -f "$0")"); { read -r v < "$d/../../../.node-version"; } 2>/dev/null; n=/opt/scaibunker/node/v$v/bin/node; [ -x "$n" ] || n=node; exec "$n" "$0" "$@"
// Run as a program (`npx scaibunker`), the line above is sh: it starts this file on the project's
// Node (.node-version, installed by scripts/setup.sh under /opt/scaibunker/node when the host's
// is older), or on `node` when that is absent. For node it is a string and a comment.
//
// Then it runs the JavaScript scripts/build.mjs compiled into packages/*/dist, while that build
// is newer than every source file; otherwise (no build yet, a source edited since, or
// SCAIBUNKER_FROM_SOURCE=1) the TypeScript itself through tsx's loader.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import module from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BUILT = ['core', 'controller', 'worker', 'sdk', 'cli'];

/** `node packages/cli/bin/scaibunker.js` started on another Node: the project's, when installed. */
function projectNode() {
  let version;
  try {
    version = readFileSync(join(ROOT, '.node-version'), 'utf8').trim();
  } catch {
    return undefined;
  }
  const node = `/opt/scaibunker/node/v${version}/bin/node`;
  if (process.versions.node === version) return undefined;
  try {
    statSync(node);
    return node;
  } catch {
    return undefined;
  }
}

function compiledIsCurrent() {
  if (process.env.SCAIBUNKER_FROM_SOURCE === '1') return false;
  let built;
  try {
    built = statSync(join(ROOT, 'packages/cli/dist/.build-hash')).mtimeMs;
  } catch {
    return false;
  }
  // Directories too: a file added, removed or renamed changes its directory's mtime.
  for (const pkg of BUILT) {
    const src = join(ROOT, 'packages', pkg, 'src');
    if (statSync(src).mtimeMs > built) return false;
    for (const entry of readdirSync(src, { recursive: true })) if (statSync(join(src, entry)).mtimeMs > built) return false;
  }
  return true;
}

const other = projectNode();
if (other) {
  const child = spawn(other, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
} else {
  // V8 code cache on disk (Node >= 22.1): later starts skip compiling the modules they load.
  module.enableCompileCache?.();
  if (compiledIsCurrent()) {
    await (await import('../dist/main.js')).main();
  } else {
    (await import('tsx/esm/api')).register();
    await (await import('../src/main.ts')).main();
  }
}
