/**
 * Builds the web console (packages/console) into packages/console/dist: index.html, console.js
 * (src/main.ts with xterm.js bundled, minified, ES2022) and console.css (its stylesheets and
 * xterm's). The controller serves that directory at /console/ (controller/src/http/routes/consoleRoutes.ts).
 *
 *   node scripts/build-console.mjs [--force]
 *
 * Incremental like scripts/build.mjs: skipped when the console's files, package-lock.json, this
 * script and esbuild's version hash as they did at the last build (stamp dist/.build-hash, written last).
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, version as esbuildVersion } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIR = join(ROOT, 'packages/console');
const OUT = join(DIR, 'dist');
const STAMP = join(OUT, '.build-hash');

const sources = readdirSync(join(DIR, 'src'), { recursive: true, withFileTypes: true })
  .filter((e) => e.isFile())
  .map((e) => join(e.parentPath, e.name))
  .sort();
const inputs = [fileURLToPath(import.meta.url), join(ROOT, 'package-lock.json'), join(DIR, 'index.html'), ...sources];
const hash = createHash('sha256').update(`esbuild ${esbuildVersion}\n`);
for (const file of inputs)
  hash
    .update(`${relative(ROOT, file)}\n`)
    .update(readFileSync(file))
    .update('\n');
const digest = hash.digest('hex');
if (!process.argv.includes('--force') && existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === digest) process.exit(0);

const started = Date.now();
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
await build({
  entryPoints: { console: join(DIR, 'src/main.ts') },
  outdir: OUT,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
});
copyFileSync(join(DIR, 'index.html'), join(OUT, 'index.html'));
writeFileSync(STAMP, `${digest}\n`);
process.stdout.write(`[build] console built to packages/console/dist in ${Date.now() - started} ms\n`);
