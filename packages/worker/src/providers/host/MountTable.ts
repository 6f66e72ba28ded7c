import { readFile } from 'node:fs/promises';

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  options: string;
}

/** Undo the octal escapes (\040 etc.) the kernel uses in /proc/self/mountinfo. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** Reads of the host mount table (/proc/self/mountinfo). */
export const MountTable = {
  async read(): Promise<MountEntry[]> {
    const text = await readFile('/proc/self/mountinfo', 'utf8');
    const out: MountEntry[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      const sep = line.indexOf(' - ');
      if (sep < 0) continue;
      const left = line.slice(0, sep).split(' ');
      const right = line.slice(sep + 3).split(' ');
      out.push({
        mountPoint: unescapeMountPath(left[4] ?? ''),
        fsType: right[0] ?? '',
        source: unescapeMountPath(right[1] ?? ''),
        options: right[2] ?? '',
      });
    }
    return out;
  },

  async isMountpoint(path: string): Promise<boolean> {
    return (await MountTable.read()).some((m) => m.mountPoint === path);
  },
};
