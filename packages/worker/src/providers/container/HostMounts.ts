import { type MountEntry, MountTable } from '../host/MountTable.js';
import { type HostShell, shq } from './HostShell.js';
import { findExecutable } from './OciRuntime.js';

/**
 * Host-side mounts done by the worker (Node has no mount(2): commands run through the
 * resident HostShell) and reads of the host mount table.
 */
export class HostMounts {
  /** util-linux mount/umount for loop devices (autoclear); per-bunker mounts use the shell's `mount`. */
  private readonly mountBin = findExecutable('mount') ?? 'mount';
  private readonly umountBin = findExecutable('umount') ?? 'umount';

  constructor(private readonly sh: HostShell) {}

  static table(): Promise<MountEntry[]> {
    return MountTable.read();
  }

  static isMountpoint(path: string): Promise<boolean> {
    return MountTable.isMountpoint(path);
  }

  /** Mount points equal to or below `prefix`, deepest first (the order to unmount them in). */
  static async mountsUnder(prefix: string): Promise<string[]> {
    const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
    const found = (await HostMounts.table()).map((m) => m.mountPoint).filter((mp) => mp === prefix || mp.startsWith(p));
    return [...new Set(found)].sort((a, b) => b.length - a.length);
  }

  /** Shell words mounting a size-capped tmpfs (the bunker's disk). */
  static tmpfsScript(target: string, sizeMb: number, mode = '0755'): string {
    return `mount -t tmpfs -o ${shq(`size=${sizeMb}m,mode=${mode},nosuid,nodev`)} scaibunker-disk ${shq(target)}`;
  }

  /** Shell words mounting the bunker's overlay rootfs. */
  static overlayScript(target: string, lower: string, upper: string, work: string): string {
    for (const p of [lower, upper, work]) if (/[,:\s]/.test(p)) throw new Error(`overlay path ${p} contains , : or whitespace`);
    return `mount -t overlay -o ${shq(`lowerdir=${lower},upperdir=${upper},workdir=${work}`)} scaibunker-root ${shq(target)}`;
  }

  async mountImage(file: string, target: string): Promise<void> {
    // ro,loop: util-linux sets up an autoclear loop device, released again on umount
    await this.sh.must(`${shq(this.mountBin)} -t ext4 -o ro,loop,noatime ${shq(file)} ${shq(target)}`, `mount ${file}`);
  }

  /**
   * Unmounts every path given (deepest first). A busy mount is detached lazily so that
   * destroy never leaves it in the mount table.
   */
  async unmount(paths: string[], opts: { loop?: boolean } = {}): Promise<void> {
    if (paths.length === 0) return;
    const words = paths.map(shq).join(' ');
    // loop mounts go through util-linux (detaches the loop device); others through the shell's applet
    const bin = opts.loop ? shq(this.umountBin) : 'umount';
    const r = await this.sh.run(`${bin} ${words}`);
    if (r.code === 0) return;
    const still = new Set((await HostMounts.table()).map((m) => m.mountPoint));
    const left = paths.filter((p) => still.has(p));
    if (left.length === 0) return;
    const lazy = await this.sh.run(`${bin} -l ${left.map(shq).join(' ')}`);
    if (lazy.code !== 0) throw new Error(`umount ${left.join(' ')} failed: ${r.stderr.trim()} / ${lazy.stderr.trim()}`);
  }
}
