/**
 * The guest kernel and initramfs of the microvm provider, as built by
 * scripts/build-guest-kernel.sh into a directory holding vmlinuz, initramfs.cpio.gz and
 * guest.json ({ kernel_version, files: { name: { sha256, size_bytes } } }).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_GUEST_DIR = '/var/lib/scaibunker/guest';

interface GuestJson {
  kernel_version: string;
  /** The kernel modules the initramfs loads (absent in guest.json files of older builds). */
  modules?: string[];
  files: Record<string, { sha256: string; size_bytes: number }>;
}

export class GuestAssets {
  private constructor(
    readonly dir: string,
    readonly kernelVersion: string,
    readonly kernelPath: string,
    readonly initrdPath: string,
    private readonly files: GuestJson['files'],
    /** The kernel modules the initramfs loads. */
    readonly modules: readonly string[],
  ) {}

  /** Reads guest.json in dir ($SCAIBUNKER_GUEST_DIR or the default); throws when anything is missing. */
  static load(dir: string = process.env.SCAIBUNKER_GUEST_DIR || DEFAULT_GUEST_DIR): GuestAssets {
    const manifest = join(dir, 'guest.json');
    if (!existsSync(manifest)) {
      throw new Error(`no guest assets in ${dir} (run scripts/build-guest-kernel.sh)`);
    }
    const g = JSON.parse(readFileSync(manifest, 'utf8')) as Partial<GuestJson>;
    if (typeof g.kernel_version !== 'string' || !g.files) throw new Error(`${manifest}: malformed`);
    for (const f of ['vmlinuz', 'initramfs.cpio.gz']) {
      if (!g.files[f]) throw new Error(`${manifest}: no entry for ${f}`);
      if (!existsSync(join(dir, f))) throw new Error(`${join(dir, f)} is missing (run scripts/build-guest-kernel.sh)`);
    }
    const modules = Array.isArray(g.modules) ? g.modules.filter((m) => typeof m === 'string') : [];
    return new GuestAssets(dir, g.kernel_version, join(dir, 'vmlinuz'), join(dir, 'initramfs.cpio.gz'), g.files, modules);
  }

  /** The sha256 guest.json records for `name` (vmlinuz, initramfs.cpio.gz). */
  sha256(name: string): string {
    const f = this.files[name];
    if (!f) throw new Error(`guest.json has no entry for ${name}`);
    return f.sha256;
  }

  /** Re-hashes the files against guest.json (not needed per boot; for integrity checks). */
  async verify(): Promise<void> {
    for (const [name, want] of Object.entries(this.files)) {
      const h = createHash('sha256');
      for await (const chunk of createReadStream(join(this.dir, name))) h.update(chunk as Buffer);
      const got = h.digest('hex');
      if (got !== want.sha256) throw new Error(`${name}: sha256 ${got} does not match guest.json (${want.sha256})`);
    }
  }
}
