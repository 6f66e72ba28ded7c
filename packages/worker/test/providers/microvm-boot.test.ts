/**
 * First building block of the microvm provider: boot the `minimal` image in QEMU -M microvm
 * (TCG: this host's /dev/kvm is PVM and boots no stock kernel) with the guest kernel +
 * initramfs from scripts/build-guest-kernel.sh, and talk to the agent (PID 1 in the guest)
 * over the virtio-serial port with the ordinary AgentClient.
 *
 *   node --import tsx --test packages/worker/test/providers/microvm-boot.test.ts
 *
 * Needs root and QEMU (the build script installs it). The suite builds what is missing
 * itself: scripts/build-guest-kernel.sh (cached: < 1 s) and scripts/build-images.sh minimal
 * (cached: < 1 s; re-bakes when the agent changed). Guest dir: $SCAIBUNKER_GUEST_DIR or
 * /var/lib/scaibunker/guest; image dir: $SCAIBUNKER_IMAGE_DIR or /var/lib/scaibunker/images.
 * Everything lives in a throwaway /tmp/sbvm-XXXXXX that the after hook removes, after
 * killing QEMU, even when a test fails.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, existsSync, type FSWatcher, mkdtempSync, readFileSync, rmSync, watch } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AgentClient } from '../../src/agent/AgentClient.js';
import { GuestAssets } from '../../src/providers/microvm/GuestAssets.js';
import { QemuCommand } from '../../src/providers/microvm/QemuCommand.js';
import { RootOverlay } from '../../src/providers/microvm/RootOverlay.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const IMAGE_DIR = process.env.SCAIBUNKER_IMAGE_DIR ?? '/var/lib/scaibunker/images';
const BOOT_DEADLINE_MS = 60_000;
/** Per test: generous for TCG (6-14x slower than KVM), but a stall fails instead of hanging. */
const TEST_TIMEOUT_MS = 120_000;
const DISK_MB = 256;
const isRoot = process.getuid?.() === 0;

interface CatalogEntry {
  name: string;
  sha256: string;
  size_bytes: number;
  file: string;
}

function run(script: string, args: string[], timeoutMs: number): void {
  try {
    execFileSync('bash', [join(REPO, script), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      env: { ...process.env, SCAIBUNKER_IMAGE_DIR: IMAGE_DIR },
    });
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer; message: string };
    throw new Error(`${script} failed: ${e.message}\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`);
  }
}

function minimalImage(): CatalogEntry {
  run('scripts/build-images.sh', ['minimal'], 600_000);
  const catalog = JSON.parse(readFileSync(join(IMAGE_DIR, 'catalog.json'), 'utf8')) as CatalogEntry[];
  const img = catalog.find((c) => c.name === 'minimal');
  assert.ok(img, 'minimal image in catalog');
  return img;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function tail(path: string, lines = 40): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no console log)';
  }
}

/** Resolves once `path` exists in `dir` (inotify via fs.watch; no polling). */
function waitForFile(dir: string, name: string, abort: Promise<never>): Promise<void> {
  let watcher: FSWatcher | undefined;
  const appeared = new Promise<void>((res) => {
    watcher = watch(dir, (_ev, f) => {
      if (f === name && existsSync(join(dir, name))) res();
    });
    if (existsSync(join(dir, name))) res(); // created before the watch started
  });
  return Promise.race([appeared, abort]).finally(() => watcher?.close());
}

async function sh(c: AgentClient, script: string, timeoutMs = 60_000) {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const r = await c.exec(
    { argv: ['/bin/sh', '-c', script], timeoutMs },
    { onStdout: (d) => void out.push(d), onStderr: (d) => void err.push(d) },
  );
  return { code: r.exitCode, out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString() };
}

describe('microvm guest: agent over virtio-serial (QEMU -M microvm, TCG)', { skip: !isRoot && 'needs root' }, () => {
  let dir = '';
  let qemu: ChildProcess | undefined;
  let qemuStderr = '';
  let exited: Promise<never> | undefined;
  let client: AgentClient | undefined;
  let socket: net.Socket | undefined;
  let guest: GuestAssets;
  let image: CatalogEntry;
  let imagePath = '';
  let overlay: RootOverlay;
  let consoleLog = '';
  let agentSock = '';
  let healthPid = 0;

  const diagnostics = () => `\n--- QEMU stderr ---\n${qemuStderr.trim() || '(empty)'}\n--- guest console (tail) ---\n${tail(consoleLog)}`;

  let started = 0;
  let passed = 0;
  /** A bounded test whose failure carries QEMU's stderr and the guest console tail. */
  function vmTest(name: string, fn: () => Promise<void>): void {
    test(name, { timeout: TEST_TIMEOUT_MS }, async () => {
      started++;
      try {
        await fn();
      } catch (err) {
        if (err instanceof Error) err.message += diagnostics();
        throw err;
      }
      passed++;
    });
  }

  /**
   * Connects to QEMU's chardev socket. The file appears at bind(), slightly before QEMU's
   * listen(): ECONNREFUSED in that window is retried (no event exists for listen()).
   */
  async function connect(): Promise<AgentClient> {
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      const s = net.connect(agentSock);
      try {
        await Promise.race([once(s, 'connect'), exited]);
        socket = s;
        return AgentClient.fromStream(s);
      } catch (err) {
        s.destroy();
        if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') throw err;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  before(
    async () => {
      // assets: both builds are cached and bounded
      run('scripts/build-guest-kernel.sh', [], 600_000);
      image = minimalImage();
      imagePath = join(IMAGE_DIR, image.file);
      guest = GuestAssets.load();

      dir = mkdtempSync(join(os.tmpdir(), 'sbvm-'));
      consoleLog = join(dir, 'console.log');
      agentSock = join(dir, 'agent.sock');
      overlay = await RootOverlay.create(join(dir, 'root.qcow2'), imagePath, DISK_MB);
      const cmd = new QemuCommand({
        kernelPath: guest.kernelPath,
        initrdPath: guest.initrdPath,
        diskPath: overlay.path,
        agentSocketPath: agentSock,
        consoleLogPath: consoleLog,
        memoryMb: 256,
        cpus: 1,
        accel: 'tcg',
      });

      const t0 = performance.now();
      const proc = spawn(cmd.binary, cmd.argv(), { stdio: ['ignore', 'ignore', 'pipe'] });
      qemu = proc;
      proc.stderr?.on('data', (d: Buffer) => {
        qemuStderr += d.toString();
      });
      exited = new Promise<never>((_, rej) => {
        proc.once('exit', (code, sig) => rej(new Error(`QEMU exited (code ${code}, signal ${sig})${diagnostics()}`)));
        proc.once('error', (e) => rej(new Error(`QEMU failed to start: ${e.message}`)));
      });
      exited.catch(() => {}); // observed through the races below

      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, rej) => {
        timer = setTimeout(
          () => rej(new Error(`agent did not answer within ${BOOT_DEADLINE_MS} ms of QEMU start${diagnostics()}`)),
          BOOT_DEADLINE_MS,
        );
      });
      const abort = Promise.race([exited, deadline]);
      try {
        await waitForFile(dir, 'agent.sock', abort);
        const tSock = performance.now();
        // QEMU holds our bytes until the guest opens the port, so the request can go out now
        client = await Promise.race([connect(), abort]);
        const h = await Promise.race([client.health(), abort]);
        healthPid = h.pid;
        const tHealth = performance.now();
        console.log(
          `# microvm boot (TCG): QEMU start -> agent socket ${(tSock - t0).toFixed(0)} ms, ` +
            `-> agent health ${(tHealth - t0).toFixed(0)} ms (guest uptime at health ${h.uptime_ms} ms since agent start)`,
        );
      } finally {
        clearTimeout(timer);
      }
    },
    { timeout: 15 * 60_000 },
  );

  after(async () => {
    // a test that timed out never reached its catch: show what the guest was doing
    if (started > passed) console.log(`# microvm: ${started - passed} test(s) did not pass${diagnostics()}`.replaceAll('\n', '\n# '));
    client?.close();
    socket?.destroy();
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
      const gone = once(qemu, 'exit');
      qemu.kill('SIGKILL');
      await gone;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  vmTest('health answers from PID 1 of the guest', async () => {
    assert.equal(healthPid, 1);
    const h = await client!.health();
    assert.equal(h.pid, 1);
    assert.equal(h.protocol, 1);
  });

  vmTest('uname -r is the guest kernel, not the host one', async () => {
    const r = await sh(client!, 'uname -r');
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim(), guest.kernelVersion);
    assert.notEqual(r.out.trim(), os.release());
  });

  vmTest('a file written through the agent reads back (1 MiB, flow control both ways)', async () => {
    const data = randomBytes(1024 * 1024);
    await client!.writeFile('/root/blob.bin', data);
    const chunks: Buffer[] = [];
    for await (const c of client!.readFile('/root/blob.bin')) chunks.push(c);
    assert.ok(Buffer.concat(chunks).equals(data), 'read back identical bytes');
    const st = await client!.stat('/root/blob.bin');
    assert.equal(st.size, data.length);
    const r = await sh(client!, 'sha256sum /root/blob.bin');
    assert.equal(r.out.split(' ')[0], createHash('sha256').update(data).digest('hex'));
  });

  vmTest('a flood completes with the right count (in the guest and streamed over the port)', async () => {
    // Sizes kept modest: the guest runs under software emulation here.
    const r = await sh(client!, 'yes | head -c 2000000 | wc -c');
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim(), '2000000');

    // 4 MiB of stdout (16 flow-control windows) through the one serial stream, while other
    // requests still get answers
    let bytes = 0;
    const t0 = performance.now();
    const flood = client!.exec(
      { argv: ['/bin/sh', '-c', 'head -c 4194304 /dev/zero'], timeoutMs: 120_000 },
      {
        onStdout: (d) => {
          bytes += d.length;
        },
      },
    );
    const h = await client!.health(); // multiplexed next to the flood
    assert.equal(h.pid, 1);
    const fr = await flood;
    const ms = performance.now() - t0;
    assert.equal(fr.exitCode, 0);
    assert.equal(bytes, 4 * 1024 * 1024);
    console.log(`# 4 MiB stdout over virtio-serial: ${ms.toFixed(0)} ms (${((4 / ms) * 1000).toFixed(1)} MiB/s)`);
  });

  vmTest('exec round trip over virtio-serial (printed)', async () => {
    const n = 20;
    let t0 = performance.now();
    for (let i = 0; i < n; i++) await client!.health();
    const healthMs = (performance.now() - t0) / n;
    t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const r = await client!.exec({ argv: ['/bin/true'] });
      assert.equal(r.exitCode, 0);
    }
    const execMs = (performance.now() - t0) / n;
    console.log(`# round trips over virtio-serial (TCG): health ${healthMs.toFixed(2)} ms, exec /bin/true ${execMs.toFixed(2)} ms`);
  });

  vmTest('the root disk is a small qcow2 overlay; the image is untouched', async () => {
    await sh(client!, 'sync');
    const allocated = await overlay.allocatedBytes();
    assert.ok(allocated < image.size_bytes / 2, `overlay uses ${allocated} bytes; the image is ${image.size_bytes} (looks like a copy)`);
    const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', overlay.path]).toString()) as {
      'virtual-size': number;
      'backing-filename'?: string;
    };
    assert.equal(info['virtual-size'], DISK_MB * 1048576);
    assert.equal(info['backing-filename'], imagePath);
    assert.equal(await sha256File(imagePath), image.sha256, 'the image file was not written');
    // the guest sees the whole disk (its ext4 grown by /init to the overlay's size)
    const df = await sh(client!, "df -k / | awk 'NR==2 { print $2 }'");
    assert.ok(Number(df.out.trim()) > (DISK_MB * 1024 * 8) / 10, `df says ${df.out.trim()} KiB`);
  });
});
