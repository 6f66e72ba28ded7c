/**
 * npm run bench:images — the image pipeline on this machine, through real processes:
 * `scaibunker controller` (bakes), `scaibunker proxy` (serves the blob directory), two
 * `scaibunker worker`s with their own caches in one availability group, Debian's
 * docker-registry with a python image pushed by skopeo.
 *
 *   bake_python_s         POST /images from the registry → ready (pull, apply, agent, mkfs, hash, upload, scan)
 *   curl_ceiling_mb_s     curl fetching the same 1 GiB from the same proxy into a file, hashed on the way
 *                         (`curl | tee FILE | openssl dgst -sha256`) and fsynced: what a plain client reaches, this run
 *   proxy_mb_s            a worker fetching 1 GiB through the storage proxy into its cache (sha256 verified, fsynced)
 *   peer_mb_s             the other worker fetching the same 1 GiB from the first (the proxy serves none of it)
 *   proxy_vs_curl_ratio   proxy_mb_s ÷ curl_ceiling_mb_s (target ≥ 0.85)
 *   peer_vs_curl_ratio    peer_mb_s ÷ curl_ceiling_mb_s (target ≥ 0.85)
 *   proxy_read_mb_s       this process reading the 1 GiB through the proxy, hashing it (the proxy's side alone)
 *   peer_read_mb_s        this process reading it from worker A's peer route, hashing it (the serving worker alone)
 *   create_cold_cache_ms  p50 create → first exec of the python image when the worker must fetch it first
 *   create_warm_cache_ms  p50 create → first exec of it when cached
 *   create_builtin_ms     p50 create → first exec of the built-in `minimal` image (what bench:latency measures), for comparison
 *
 * Last line: one JSON object.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { HttpWorkerClient } from '@scaibunker/worker';
import { run, startRegistry } from '../packages/controller/test/images/bakeFixtures.js';
import { adminKeyOf, eventually, FAST_INTERVALS, freePort, IMAGE_DIR, ServerProcess, tempDataDir } from '../test/e2e/harness.js';

const GiB = 1024 * 1024 * 1024;
const COLD = Number(process.env.BENCH_COLD_CREATES ?? 5);
const WARM = Number(process.env.BENCH_WARM_CREATES ?? 10);
const TRANSFER_BYTES = Number(process.env.BENCH_TRANSFER_BYTES ?? GiB);

const log = (m: string) => process.stderr.write(`[bench] ${m}\n`);
function p50(samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  return Number((s[Math.floor(s.length / 2)] ?? Number.NaN).toFixed(1));
}
const mbs = (bytes: number, ms: number) => Number((bytes / 1e6 / (ms / 1000)).toFixed(1));

/**
 * MB/s of curl fetching `url` into `file` while hashing it (`tee | openssl dgst -sha256`, as the
 * worker hashes while it writes; OpenSSL's hash, as Node's is — coreutils' `sha256sum` has no SHA
 * extensions and would make the ceiling ~4× too low) and fsyncing it (`sync FILE`), checked against `sha`: the ceiling a
 * plain HTTP client reaches against the same server in the same run.
 */
function curlRate(url: string, token: string, sha: string, file: string, bytes: number): number {
  const t = performance.now();
  const out = execFileSync(
    'bash',
    ['-c', 'set -o pipefail; curl -sSf -H "authorization: Bearer $TOKEN" "$URL" | tee "$FILE" | openssl dgst -sha256 -r && sync "$FILE"'],
    { env: { ...process.env, TOKEN: token, URL: url, FILE: file }, encoding: 'utf8' },
  );
  const ms = performance.now() - t;
  rmSync(file, { force: true });
  if (!out.startsWith(sha)) throw new Error(`curl ${url}: wrong bytes (${out.trim()})`);
  return mbs(bytes, ms);
}

/** MB/s of one GET read whole and hashed here, checked against `sha`. */
async function readRate(url: string, token: string, sha: string): Promise<number> {
  const t = performance.now();
  const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get(url, { headers: { authorization: `Bearer ${token}` } }, resolve).once('error', reject),
  );
  if (res.statusCode !== 200) throw new Error(`GET ${url}: HTTP ${res.statusCode}`);
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of res) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  if (h.digest('hex') !== sha) throw new Error(`GET ${url}: wrong bytes`);
  return mbs(bytes, performance.now() - t);
}

const cacheDir = process.env.SCAIBUNKER_BUILD_CACHE ?? '/var/cache/scaibunker';
const pythonRootfs = readdirSync(cacheDir).find((n) => n.startsWith('python-base-'));
if (!pythonRootfs) throw new Error(`no debootstrapped python rootfs under ${cacheDir}: run scripts/setup.sh first`);

const data = tempDataDir();
const token = randomBytes(24).toString('hex');
const procs: ServerProcess[] = [];
let registry: Awaited<ReturnType<typeof startRegistry>> | undefined;
try {
  // The python image as an OCI image in a local registry: the debootstrapped rootfs set-up caches, one layer.
  registry = await startRegistry(join(data.dir, 'registry'));
  const layout = join(data.dir, 'layout');
  const bundle = join(data.dir, 'bundle');
  log('building the python OCI image (umoci) and pushing it (skopeo)');
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:3.11`]);
  await run('umoci', ['unpack', '--image', `${layout}:3.11`, bundle]);
  await run('cp', ['-a', `${join(cacheDir, pythonRootfs)}/.`, join(bundle, 'rootfs')]);
  await run('umoci', ['repack', '--image', `${layout}:3.11`, bundle]);
  await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:3.11`, `docker://${registry.host}/bench/python:3.11`]);
  rmSync(bundle, { recursive: true, force: true });

  const controllerDir = join(data.dir, 'c');
  const controller = await ServerProcess.start(
    [
      'controller',
      '--port',
      '0',
      '--data-dir',
      controllerDir,
      '--image-dir',
      IMAGE_DIR,
      '--publish-catalog',
      '--insecure-registry',
      registry.host,
      ...FAST_INTERVALS,
    ],
    { SCAIBUNKER_WORKER_TOKEN: token },
  );
  procs.push(controller);
  const proxy = await ServerProcess.start(['proxy', '--port', '0', '--data-dir', controllerDir, '--access-log'], {
    SCAIBUNKER_WORKER_TOKEN: token,
  });
  procs.push(proxy);
  const workers: Array<{ name: string; id: string; url: string; imageDir: string; client: HttpWorkerClient }> = [];
  for (const name of ['wa', 'wb']) {
    const port = await freePort();
    const imageDir = join(data.dir, name, 'images');
    const p = await ServerProcess.start(
      [
        'worker',
        '--controller',
        controller.url,
        '--storage-url',
        proxy.url,
        '--port',
        String(port),
        '--name',
        name,
        '--data-dir',
        join(data.dir, name),
        '--image-dir',
        imageDir,
        '--heartbeat-interval-ms',
        '200',
      ],
      { SCAIBUNKER_WORKER_TOKEN: token },
      /worker (wk_\w+) at/,
    );
    procs.push(p);
    const id = /worker (wk_\w+) at/.exec(p.output())?.[1] as string;
    const url = `http://127.0.0.1:${port}`;
    workers.push({ name, id, url, imageDir, client: new HttpWorkerClient(url, token) });
  }
  const [wa, wb] = workers as [(typeof workers)[0], (typeof workers)[0]];
  const admin = new ScaiBunkerClient({ baseUrl: controller.url, apiKey: adminKeyOf(controllerDir) });
  await eventually('both workers online', async () =>
    (await admin.workers.list()).filter((w) => w.state === 'online').length === 2 ? true : undefined,
  );

  // 1. Bake.
  const t0 = performance.now();
  const created = await admin.images.create({
    name: 'python-bench',
    scope: 'platform',
    lazy_pull: true,
    source: { type: 'oci', ref: `${registry.host}/bench/python:3.11` },
  });
  let lastPhase = '';
  const baked = await admin.images.waitUntilBaked(created.id, {
    intervalMs: 200,
    onProgress: (i) => {
      if (i.progress && i.progress.phase !== lastPhase) {
        lastPhase = i.progress.phase;
        log(`bake: ${lastPhase} at ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
    },
  });
  const bakeS = Number(((performance.now() - t0) / 1000).toFixed(1));
  if (baked.state !== 'ready' || !baked.sha256) throw new Error(`the python bake failed: ${baked.failure}`);
  log(`baked python in ${bakeS} s: ${((baked.size_bytes ?? 0) / 1048576).toFixed(0)} MiB ext4`);

  // 2. 1 GiB through the proxy to worker A (no group yet, so no peer).
  log(`writing ${TRANSFER_BYTES / GiB} GiB through the proxy into the blob store`);
  const chunk = randomBytes(1024 * 1024);
  const blobFile = join(data.dir, 'big.bin');
  const hash = createHash('sha256');
  const out = createWriteStream(blobFile);
  for (let n = 0; n < TRANSFER_BYTES; n += chunk.length) {
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
  const bigSha = hash.digest('hex');
  const up = await fetch(`${proxy.url}/v1/modules/scaibunker/storage/scaibunker/images/${bigSha}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'x-scaibunker-sha256': bigSha },
    body: Readable.toWeb(createReadStream(blobFile)) as ReadableStream,
    duplex: 'half',
  } as RequestInit);
  if (up.status !== 201) throw new Error(`upload failed: ${up.status} ${await up.text()}`);
  rmSync(blobFile);
  // The upload's dirty pages are set-up, not part of the transfer: flush them before timing.
  execFileSync('sync');
  const proxyRead = await readRate(`${proxy.url}/v1/modules/scaibunker/storage/scaibunker/images/${bigSha}`, token, bigSha);
  log(`this process read it through the proxy at ${proxyRead} MB/s`);
  const curlCeiling = curlRate(
    `${proxy.url}/v1/modules/scaibunker/storage/scaibunker/images/${bigSha}`,
    token,
    bigSha,
    join(data.dir, 'curl.bin'),
    TRANSFER_BYTES,
  );
  log(`curl fetched it through the proxy into a file (hashed, fsynced) at ${curlCeiling} MB/s`);
  execFileSync('sync');
  const t1 = performance.now();
  const viaProxy = await wa.client.ensureImage(bigSha);
  const proxyMs = performance.now() - t1;
  if (viaProxy.source !== 'proxy') throw new Error(`worker A got it from ${viaProxy.source}`);
  log(`worker A: ${TRANSFER_BYTES / GiB} GiB from the proxy in ${(proxyMs / 1000).toFixed(2)} s`);

  // 3. The same 1 GiB from worker A to worker B, peer to peer.
  const group = await admin.availabilityGroups.create('bench');
  await admin.availabilityGroups.addWorker(group.id, wa.id);
  await admin.availabilityGroups.addWorker(group.id, wb.id);
  await eventually('worker A listed as a peer', async () => {
    const res = await fetch(`${controller.url}/v1/modules/scaibunker/peers/${bigSha}?worker_id=${wb.id}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const items = ((await res.json()) as { items: unknown[] }).items;
    return items.length > 0 ? true : undefined;
  });
  const peerRead = await readRate(`${wa.url}/v1/images/${bigSha}`, token, bigSha);
  log(`this process read it from worker A's peer route at ${peerRead} MB/s`);
  const proxyReads = () =>
    proxy
      .output()
      .split('\n')
      .filter((l) => l.startsWith(`storage GET scaibunker/images/${bigSha} 20`)).length;
  const readsBefore = proxyReads();
  execFileSync('sync');
  const t2 = performance.now();
  const viaPeer = await wb.client.ensureImage(bigSha);
  const peerMs = performance.now() - t2;
  if (viaPeer.source !== 'peer' || proxyReads() !== readsBefore)
    throw new Error(`worker B did not get it from its peer (${viaPeer.source})`);
  log(`worker B: ${TRANSFER_BYTES / GiB} GiB from worker A in ${(peerMs / 1000).toFixed(2)} s; the proxy served none of it`);
  for (const w of workers) rmSync(join(w.imageDir, `${bigSha}.ext4`), { force: true });

  // 4. Creates: only worker A takes bunkers, so its cache is what is measured.
  await admin.workers.drain(wb.id);
  const tenantId = (await admin.admin.createTenant('bench')).id;
  const tenant = new ScaiBunkerClient({
    baseUrl: controller.url,
    apiKey: (await admin.admin.createApiKey(tenantId, 'k', ['scaibunker:admin:tenant'])).key,
  });
  const createFirstExec = async (image: string) => {
    const t = performance.now();
    const b = await Bunker.create({ image }, tenant);
    const r = await b.exec(['true']);
    const ms = performance.now() - t;
    await b.terminate();
    if (r.exit_code !== 0) throw new Error(`true exited ${r.exit_code} in ${image}`);
    return ms;
  };
  const cachedOnA = (sha: string) => existsSync(join(wa.imageDir, `${sha}.ext4`));
  const cold: number[] = [];
  for (let i = 0; i < COLD; i++) {
    rmSync(join(wa.imageDir, `${baked.sha256}.ext4`), { force: true });
    // Wait until worker A's row no longer lists it: otherwise placement still counts it as cached.
    await eventually('worker A reports the image gone', async () => {
      const res = await fetch(`${controller.url}/v1/modules/scaibunker/peers/${baked.sha256}?worker_id=${wb.id}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      return ((await res.json()) as { items: unknown[] }).items.length === 0 ? true : undefined;
    });
    cold.push(await createFirstExec('python-bench'));
    if (!cachedOnA(baked.sha256)) throw new Error('the cold create did not leave the image cached on worker A');
  }
  log(`cold-cache create → first exec: ${cold.map((x) => x.toFixed(0)).join(', ')} ms`);
  const warm: number[] = [];
  for (let i = 0; i < WARM; i++) warm.push(await createFirstExec('python-bench'));
  log(`warm-cache create → first exec: ${warm.map((x) => x.toFixed(0)).join(', ')} ms`);
  // The built-in image is published to the blob store (--publish-catalog) but not lazy_pull:
  // worker A fetches it first, as a group would have it do.
  const minimal = (await admin.images.list()).find((i) => i.name === 'minimal');
  if (!minimal?.sha256) throw new Error('no built-in minimal image');
  await wa.client.ensureImage(minimal.sha256);
  await eventually('worker A reports minimal cached', async () => {
    const res = await fetch(`${controller.url}/v1/modules/scaibunker/peers/${minimal.sha256}?worker_id=${wb.id}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return ((await res.json()) as { items: unknown[] }).items.length > 0 ? true : undefined;
  });
  await createFirstExec('minimal');
  const builtin: number[] = [];
  for (let i = 0; i < WARM; i++) builtin.push(await createFirstExec('minimal'));
  log(`built-in minimal create → first exec: ${builtin.map((x) => x.toFixed(0)).join(', ')} ms`);

  console.log(
    JSON.stringify({
      bake_python_s: bakeS,
      curl_ceiling_mb_s: curlCeiling,
      proxy_mb_s: mbs(TRANSFER_BYTES, proxyMs),
      peer_mb_s: mbs(TRANSFER_BYTES, peerMs),
      proxy_vs_curl_ratio: Number((mbs(TRANSFER_BYTES, proxyMs) / curlCeiling).toFixed(2)),
      peer_vs_curl_ratio: Number((mbs(TRANSFER_BYTES, peerMs) / curlCeiling).toFixed(2)),
      proxy_read_mb_s: proxyRead,
      peer_read_mb_s: peerRead,
      create_cold_cache_ms: p50(cold),
      create_warm_cache_ms: p50(warm),
      create_builtin_ms: p50(builtin),
      python_image_mb: Number(((baked.size_bytes ?? 0) / 1e6).toFixed(0)),
      transfer_bytes: TRANSFER_BYTES,
    }),
  );
} finally {
  for (const p of procs.reverse()) await p.kill();
  await registry?.stop();
  data.remove();
}
