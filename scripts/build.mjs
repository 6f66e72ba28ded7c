/**
 * Compiles the packages' TypeScript to JavaScript, once, so commands run plain JavaScript instead
 * of loading tsx and transforming every file at each start (scripts/setup.sh runs this).
 *
 *   node scripts/build.mjs [--force]
 *
 * packages/<pkg>/src/**\/*.ts becomes packages/<pkg>/dist/**\/*.js (+ .js.map), one file per source
 * file at the same depth, so `new URL('../../agent/build/…', import.meta.url)` resolves from dist as
 * it does from src. An import of another workspace package (`@scaibunker/core`) becomes a relative
 * import of that package's dist/index.js (a subpath export, `@scaibunker/core/worker-client`, of its
 * source file's compiled twin); every other import stays as written. esbuild strips the
 * types without checking them: `tsc -p tsconfig.json` (scripts/test.sh) checks them.
 *
 * Two dependencies are bundled, each into one file under packages/cli/dist/vendor/ that every
 * compiled import of them is pointed at (one copy per process): @sinclair/typebox is some 270 ESM
 * files and undici some 100, and loading those file by file costs more at each start than the rest
 * of `scaibunker bunker ls` (~70 and ~40 ms; bundled, ~3 and ~35).
 *
 * Incremental: skipped when the sources, tsconfig.json, package-lock.json, this script and esbuild's version hash as
 * they did at the last build. The stamp packages/cli/dist/.build-hash is written last;
 * packages/cli/bin/scaibunker.js runs the compiled CLI only while the stamp is newer than every
 * source file, and the TypeScript through tsx otherwise.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, version as esbuildVersion } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES = ['core', 'controller', 'worker', 'sdk', 'cli'];
const STAMP = join(ROOT, 'packages/cli/dist/.build-hash');
const VENDOR_DIR = join(ROOT, 'packages/cli/dist/vendor');
/** Bundled dependencies: import specifier → its file in VENDOR_DIR, and whether it is CommonJS. */
const VENDORED = { '@sinclair/typebox': { file: 'typebox.js', cjs: false }, undici: { file: 'undici.js', cjs: true } };

function sourcesOf(pkg) {
  const src = join(ROOT, 'packages', pkg, 'src');
  return readdirSync(src, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

const sources = Object.fromEntries(PACKAGES.map((pkg) => [pkg, sourcesOf(pkg)]));
/** The `exports` map of a workspace package's package.json. */
const packageExports = (pkg) => JSON.parse(readFileSync(join(ROOT, 'packages', pkg, 'package.json'), 'utf8')).exports ?? {};
const hash = createHash('sha256').update(`esbuild ${esbuildVersion}\n`);
const inputs = [
  fileURLToPath(import.meta.url),
  join(ROOT, 'tsconfig.json'),
  join(ROOT, 'package-lock.json'),
  ...PACKAGES.map((pkg) => join(ROOT, 'packages', pkg, 'package.json')),
  ...Object.values(sources).flat(),
];
for (const file of inputs) {
  hash
    .update(`${relative(ROOT, file)}\n`)
    .update(readFileSync(file))
    .update('\n');
}
const digest = hash.digest('hex');
if (!process.argv.includes('--force') && existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === digest) {
  // Unchanged, though maybe touched (a checkout): the stamp's time says the build is current.
  const now = new Date();
  utimesSync(STAMP, now, now);
  process.exit(0);
}

const started = Date.now();
rmSync(STAMP, { force: true });
for (const pkg of PACKAGES) rmSync(join(ROOT, 'packages', pkg, 'dist'), { recursive: true, force: true });
const require = createRequire(join(ROOT, 'package.json'));
await Promise.all(
  Object.entries(VENDORED).map(([spec, { file, cjs }]) => {
    // A CommonJS module has no static export list: name its exports.
    const names = cjs ? Object.keys(require(spec)).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k) && k !== 'default') : [];
    const contents = cjs
      ? `import m from '${spec}';\nexport default m;\nexport const { ${names.join(', ')} } = m;\n`
      : `export * from '${spec}';\n`;
    return build({
      stdin: { contents, resolveDir: ROOT, loader: 'js' },
      outfile: join(VENDOR_DIR, file),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node24',
      // CommonJS inside an ES module: its require() of Node's own modules
      banner: { js: "import { createRequire as __vendorRequire } from 'node:module'; const require = __vendorRequire(import.meta.url);" },
      logLevel: 'warning',
    });
  }),
);
await Promise.all(
  PACKAGES.map(async (pkg) => {
    const srcDir = join(ROOT, 'packages', pkg, 'src');
    const outDir = join(ROOT, 'packages', pkg, 'dist');
    /** Every import stays external; `@scaibunker/<pkg>` is pointed at that package's dist, a vendored one at its bundle. */
    const workspaceImports = {
      name: 'workspace-imports',
      setup(b) {
        b.onResolve({ filter: /.*/ }, (args) => {
          if (args.kind === 'entry-point') return undefined;
          const from = (target) => {
            const path = relative(dirname(join(outDir, relative(srcDir, args.importer))), target);
            return { path: path.startsWith('.') ? path : `./${path}`, external: true };
          };
          if (Object.hasOwn(VENDORED, args.path)) return from(join(VENDOR_DIR, VENDORED[args.path].file));
          const m = /^@scaibunker\/([a-z-]+)(\/[a-z-]+)?$/.exec(args.path);
          if (!m) return { path: args.path, external: true };
          if (!PACKAGES.includes(m[1])) return { errors: [{ text: `unknown workspace package ${args.path}` }] };
          if (!m[2]) return from(join(ROOT, 'packages', m[1], 'dist/index.js'));
          // A subpath export (`@scaibunker/core/worker-client`): its source file's compiled twin.
          const exported = packageExports(m[1])[`.${m[2]}`];
          if (typeof exported !== 'string' || !exported.startsWith('./src/') || !exported.endsWith('.ts'))
            return { errors: [{ text: `${args.path} is not a ./src/*.ts export of @scaibunker/${m[1]}` }] };
          return from(join(ROOT, 'packages', m[1], `dist/${exported.slice('./src/'.length, -'.ts'.length)}.js`));
        });
      },
    };
    await build({
      entryPoints: sources[pkg],
      outbase: srcDir,
      outdir: outDir,
      bundle: true,
      plugins: [workspaceImports],
      platform: 'node',
      format: 'esm',
      target: 'node24',
      sourcemap: 'linked',
      logLevel: 'warning',
    });
  }),
);
writeFileSync(STAMP, `${digest}\n`);
const count = Object.values(sources).flat().length;
process.stdout.write(`[build] ${count} files compiled to packages/*/dist in ${Date.now() - started} ms\n`);
