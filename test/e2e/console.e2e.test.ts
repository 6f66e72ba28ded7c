/**
 * The web console end to end: a real `scaibunker serve` (crun bunkers), the console built by
 * scripts/build-console.mjs, and Chromium driven by playwright-core. Signs in (a wrong key is
 * refused with a message), sees a bunker made through the API, opens it, uploads a file and sees
 * it listed, types into the terminal and reads the output back, runs a command, takes a
 * snapshot, reads its audit events, terminates it from the console while the terminal is open
 * (the terminal says the bunker ended), and walks every page with a tenant admin, a key without
 * `scaibunker:read` (an explanation, not a blank page) and the platform admin (workers: drain,
 * resume). A screenshot of each page is written under the test's temp directory.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { type Browser, chromium, type Page } from 'playwright-core';
import {
  adminKeyOf,
  destroyLeftoverBunkers,
  FAST_INTERVALS,
  freePort,
  IMAGE_DIR,
  mountsUnder,
  ServerProcess,
  tempDataDir,
} from './harness.js';

const CHROMIUM = process.env.SCAIBUNKER_CHROMIUM ?? '/usr/bin/chromium';
const SMALL = { image: 'minimal', memory_mb: 64, disk_mb: 64 };
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const ROOT = new URL('../../', import.meta.url).pathname;

describe('the web console (/console/), in Chromium', () => {
  const data = tempDataDir();
  /** Screenshots, one PNG per page; kept after the run only with SCAIBUNKER_KEEP_SCREENSHOTS=1 (then their directory is printed). */
  const shots = mkdtempSync(join(tmpdir(), 'sb-console-shots-'));
  let server: ServerProcess;
  let browser: Browser;
  let page: Page;
  let adminKey: string;
  let tenantKey: string;
  let noReadKey: string;
  let tenant: ScaiBunkerClient;
  const bunkers: Bunker[] = [];

  const shot = async (name: string) => {
    // Let polling pages draw their answer first.
    await page.waitForLoadState('networkidle').catch(() => undefined);
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  };
  /** Waits until an element matching `selector` contains `text`. */
  const waitText = (selector: string, text: string, timeout = 10_000) =>
    page.locator(selector, { hasText: text }).first().waitFor({ timeout });
  const signIn = async (key: string) => {
    // From a clean tab: a test that failed half-way may have left a key behind.
    await page.goto(`${server.url}/console/`);
    await page.evaluate(() => sessionStorage.clear());
    await page.reload();
    await page.fill('#api-key', key);
    await page.click('#signin button[type=submit]');
  };
  const signOut = async () => {
    await page.click('#sign-out');
    await page.waitForSelector('#signin');
  };

  before(async () => {
    execFileSync(process.execPath, [join(ROOT, 'scripts/build-console.mjs')], { stdio: 'inherit' });
    const port = await freePort();
    server = await ServerProcess.start([
      'serve',
      '--port',
      String(port),
      '--data-dir',
      data.dir,
      '--image-dir',
      IMAGE_DIR,
      // Metered every second, so the usage page has something to draw.
      '--usage-interval-ms',
      '1000',
      ...FAST_INTERVALS,
    ]);
    adminKey = adminKeyOf(data.dir);
    const admin = new ScaiBunkerClient({ baseUrl: server.url, apiKey: adminKey });
    const t = await admin.admin.createTenant('console');
    tenantKey = (await admin.admin.createApiKey(t.id, 'console-admin', ['scaibunker:admin:tenant'], { user_id: 'console-user' })).key;
    noReadKey = (await admin.admin.createApiKey(t.id, 'console-exec-only', ['scaibunker:execute'])).key;
    tenant = new ScaiBunkerClient({ baseUrl: server.url, apiKey: tenantKey });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    // Terminate and delete buttons ask first.
    page.on('dialog', (d) => void d.accept());
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    for (const b of bunkers) await b.terminate().catch(() => undefined);
    await server?.kill();
    const orphans = await destroyLeftoverBunkers(`${data.dir}/worker`);
    const left = mountsUnder(data.dir);
    data.remove();
    if (process.env.SCAIBUNKER_KEEP_SCREENSHOTS === '1') process.stdout.write(`[console e2e] screenshots in ${shots}\n`);
    else rmSync(shots, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no mount is left under the data dir');
    assert.deepEqual(orphans, [], 'every bunker was terminated');
  });

  test('the dashboard path lists what the module path lists', async () => {
    const b = await Bunker.create({ ...SMALL, metadata: { made: 'api' } }, tenant);
    bunkers.push(b);
    const get = async (path: string) =>
      (await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${tenantKey}` } })).json() as Promise<{
        items: { id: string }[];
      }>;
    const dashboard = await get('/v1/scaibunker/bunkers');
    assert.deepEqual(dashboard, await get('/v1/modules/scaibunker/bunkers'));
    assert.deepEqual(
      dashboard.items.map((x) => x.id),
      [b.id],
    );
  });

  test('a wrong key is refused with a message, and never lands in the URL', async () => {
    await signIn('sbk_this-is-not-a-key');
    const error = await page.waitForSelector('#signin-error .problem');
    assert.match((await error.textContent()) ?? '', /not accepted/);
    assert.doesNotMatch(page.url(), /sbk_/);
    await shot('signin-error');
  });

  test('signs in and sees the bunker made through the API, live', async () => {
    await signIn(tenantKey);
    const id = bunkers[0]?.id as string;
    const row = await page.waitForSelector(`#bunkers-table a[href="#/bunkers/${id}"]`);
    assert.ok(row);
    const text = (await page.textContent('#bunkers-table')) ?? '';
    assert.match(text, /running/);
    assert.match(text, /minimal/);
    assert.match(text, /container/);
    assert.match(text, /made=api/);
    assert.doesNotMatch(page.url(), /sbk_/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('scaibunker.console.key')), tenantKey);
    // Live: a bunker made now shows up without a reload.
    const second = await Bunker.create({ ...SMALL, metadata: { made: 'later' } }, tenant);
    bunkers.push(second);
    await page.waitForSelector(`#bunkers-table a[href="#/bunkers/${second.id}"]`, { timeout: 10_000 });
    await shot('bunkers');
  });

  test('opens the bunker, uploads a file and sees it listed (and its bytes arrived)', async () => {
    const id = bunkers[0]?.id as string;
    await page.click(`#bunkers-table a[href="#/bunkers/${id}"]`);
    await page.waitForSelector('#bunker-props dl');
    assert.match((await page.textContent('#bunker-props')) ?? '', /minimal/);
    await page.fill('#files-path', '/tmp');
    await page.click('#files-go');
    await page.waitForSelector('#files-table');
    await page.setInputFiles('#files-upload', {
      name: 'hello-console.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('hi from the console\n'),
    });
    await page.waitForSelector('#files-table [data-file="hello-console.txt"]');
    assert.match((await page.textContent('#files-table')) ?? '', /20 B/);
    const bytes = await bunkers[0]?.files.read('/tmp/hello-console.txt');
    assert.equal(bytes?.toString(), 'hi from the console\n');
    await shot('bunker-files');
  });

  test('types into the terminal and reads the output back', async () => {
    const id = bunkers[0]?.id as string;
    await page.click('.tabs a[data-tab="terminal"]');
    await waitText('#terminal-status', 'connected', 15_000);
    await page.click('#terminal');
    await page.keyboard.type('echo console-$((6*7)) && cat /tmp/hello-console.txt\n');
    // The typed line holds `$((6*7))`, not `42`: 42 is the shell's output.
    await waitText('#terminal .xterm-rows', 'console-42', 15_000);
    await waitText('#terminal .xterm-rows', 'hi from the console', 15_000);
    assert.match(page.url(), new RegExp(`#/bunkers/${id}/terminal$`));
    await shot('bunker-terminal');
  });

  test('runs a command and sees it in the exec log', async () => {
    await page.click('.tabs a[data-tab="exec-log"]');
    await page.fill('#exec-command', 'echo exec-from-console');
    await page.click('#tab-exec-log button[type=submit]');
    await waitText('#exec-result', 'exec-from-console');
    await waitText('#exec-log-table', 'echo exec-from-console');
    await shot('bunker-exec-log');
  });

  test('takes a snapshot and sees it in the list', async () => {
    await page.click('.tabs a[data-tab="snapshots"]');
    await page.fill('#snapshot-name', 'from console');
    await page.click('#take-snapshot');
    await waitText('#snapshots-table', 'from console');
    await waitText('#snapshots-table', 'ready', 30_000);
    await shot('bunker-snapshots');
  });

  test("shows the bunker's audit events", async () => {
    await page.click('.tabs a[data-tab="audit"]');
    await page.waitForSelector('#bunker-audit-table');
    // Written in the background (within ~100 ms): the upload is there by now.
    const text = (await page.textContent('#bunker-audit-table')) ?? '';
    assert.match(text, /file\.write/);
    assert.match(text, /exec\.run/);
    await shot('bunker-audit');
  });

  test('terminates the bunker from the console; its open terminal says so and closes', async () => {
    const b = bunkers[0] as Bunker;
    await page.click('.tabs a[data-tab="terminal"]');
    await waitText('#terminal-status', 'connected', 15_000);
    await page.click('#terminate');
    await waitText('#terminal-status', 'the bunker ended', 15_000);
    assert.match((await page.textContent('#terminal-status')) ?? '', /terminated/);
    assert.equal((await b.refresh()).state, 'terminated');
    await waitText('#bunker-props', 'terminated');
    await shot('bunker-terminated');
    await page.click('header a[href="#/bunkers"]');
    // Ended bunkers are hidden unless asked for.
    await page.waitForSelector('#bunkers-table');
    await page.check('#filter-ended');
    await page.locator('#bunkers-table tr', { hasText: b.id }).filter({ hasText: 'terminated' }).waitFor({ timeout: 10_000 });
  });

  test('creates a bunker with the dialog and terminates it from the list', async () => {
    await page.click('#create-bunker');
    await page.fill('#create-image', 'minimal');
    await page.fill('#create-memory', '64');
    await page.fill('#create-disk', '64');
    await page.fill('#create-labels', 'made=dialog');
    await shot('bunker-create-dialog');
    await page.click('#create-submit');
    await page.waitForURL(/#\/bunkers\/bk_/, { timeout: 30_000 });
    const id = /#\/bunkers\/(bk_[A-Za-z0-9]+)/.exec(page.url())?.[1] as string;
    const made = await Bunker.connect(id, tenant);
    bunkers.push(made);
    await page.click('header a[href="#/bunkers"]');
    await page.click(`[data-terminate="${id}"]`);
    await page.locator(`[data-terminate="${id}"]`).waitFor({ state: 'detached', timeout: 15_000 });
    assert.equal((await made.refresh()).state, 'terminated');
  });

  test('every other page, for a tenant admin (workers: an explanation, not a blank page)', async () => {
    // A quota profile on this user, so the quota page has bars.
    const api = (path: string, body: unknown) =>
      fetch(`${server.url}/v1/modules/scaibunker${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tenantKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then(async (r) => {
        assert.ok(r.ok, `${path}: ${r.status} ${await r.clone().text()}`);
        return (await r.json()) as { id: string };
      });
    const profile = await api('/quota-profiles', { name: 'console', max_bunkers: 5, max_memory_mb: 1024, max_cpu_millicores: 4000 });
    await api(`/quota-profiles/${profile.id}/assignments`, { kind: 'user', subject: 'console-user' });

    await page.click('header a[href="#/images"]');
    await waitText('#images-table', 'minimal');
    await shot('images');

    await page.click('header a[href="#/quotas"]');
    await page.waitForSelector('#quota-list [data-bucket="console-user"] .bar');
    assert.match((await page.textContent('#quota-list')) ?? '', /\/ 5/);
    await shot('quotas');

    // Metered every second here: wait for the rows, then the page draws them.
    const usage = async () => (await tenant.usage.get({ groupBy: 'hour' })).items.length;
    for (let i = 0; i < 100 && (await usage()) === 0; i++) await new Promise((r) => setTimeout(r, 200));
    await page.click('header a[href="#/usage"]');
    await page.locator('#usage-table tbody td:not(.empty)').first().waitFor();
    await page.waitForSelector('#usage svg.chart rect.barv[height]:not([height="0"])');
    await shot('usage');

    await page.click('header a[href="#/audit"]');
    await waitText('#audit-table', 'bunker.create');
    await shot('audit');

    await page.click('header a[href="#/workers"]');
    const denied = await page.waitForSelector('.problem.denied');
    assert.match((await denied.textContent()) ?? '', /scaibunker:admin/);
    await shot('workers-denied');
    await signOut();
  });

  test('a key without scaibunker:read sees why, not a blank page', async () => {
    await signIn(noReadKey);
    const denied = await page.waitForSelector('.problem.denied');
    const text = (await denied.textContent()) ?? '';
    assert.match(text, /scaibunker:read/);
    assert.match(text, /may not list the bunkers/);
    await shot('no-read-bunkers');
    await signOut();
  });

  test('the platform admin drains and resumes the worker', async () => {
    await signIn(adminKey);
    await page.waitForSelector('#bunkers-table');
    await page.click('header a[href="#/workers"]');
    const drain = await page.waitForSelector('#workers-table [data-drain]');
    const workerId = (await drain.getAttribute('data-drain')) as string;
    await drain.click();
    await page.waitForSelector(`#workers-table [data-resume="${workerId}"]`);
    assert.match((await page.textContent('#workers-table')) ?? '', /draining/);
    await shot('workers-draining');
    await page.click(`#workers-table [data-resume="${workerId}"]`);
    await page.waitForSelector(`#workers-table [data-drain="${workerId}"]`);
    await shot('workers');
    await signOut();
  });

  test('a screenshot of each page, each a non-empty PNG', () => {
    const files = readdirSync(shots).sort();
    for (const name of [
      'signin-error',
      'bunkers',
      'bunker-files',
      'bunker-terminal',
      'bunker-exec-log',
      'bunker-snapshots',
      'bunker-audit',
      'bunker-terminated',
      'images',
      'quotas',
      'usage',
      'audit',
      'workers',
      'workers-denied',
      'no-read-bunkers',
    ]) {
      assert.ok(files.includes(`${name}.png`), `${name}.png was written`);
      const file = join(shots, `${name}.png`);
      assert.ok(statSync(file).size > 1000, `${name}.png is not empty`);
      assert.deepEqual(readFileSync(file).subarray(0, 8), PNG_MAGIC, `${name}.png is a PNG`);
    }
  });
});
