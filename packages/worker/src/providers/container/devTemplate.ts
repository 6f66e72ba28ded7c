import { shq } from './HostShell.js';

/** The device nodes a container's /dev holds (the OCI runtimes' defaults): name, major, minor. */
export const DEV_NODES: ReadonlyArray<readonly [name: string, major: number, minor: number]> = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
];

/** The runtimes' symlinks in /dev: name -> target. */
export const DEV_SYMLINKS: ReadonlyArray<readonly [name: string, target: string]> = [
  ['fd', '/proc/self/fd'],
  ['stdin', '/proc/self/fd/0'],
  ['stdout', '/proc/self/fd/1'],
  ['stderr', '/proc/self/fd/2'],
  ['ptmx', 'pts/ptmx'],
  ['core', '/proc/kcore'],
];

/**
 * Shell words making `dir` the /dev a container starts with when /dev is a bind (see
 * OciBundleOptions.devDir): what the runtime puts in the /dev tmpfs it mounts itself — the
 * device nodes, the symlinks, the mount points of /dev/pts, /dev/shm and /dev/mqueue. Built
 * next to `dir` and renamed into place, so a half-made one is never used; a `dir` already
 * there is kept (bunkers copy it, see ContainerProvider). Node has no mknod(2), hence a
 * script (one line, for HostShell.run).
 */
export function devTemplateScript(dir: string): string {
  const tmp = `${dir}.new`;
  const q = shq(tmp);
  return [
    `[ -d ${shq(dir)} ] && exit 0`,
    `rm -rf ${q}`,
    `mkdir -m 0755 ${q}`,
    ...DEV_NODES.map(([name, major, minor]) => `mknod -m 0666 ${shq(`${tmp}/${name}`)} c ${major} ${minor}`),
    ...DEV_SYMLINKS.map(([name, target]) => `ln -s ${shq(target)} ${shq(`${tmp}/${name}`)}`),
    `mkdir -m 0755 ${shq(`${tmp}/pts`)}`,
    `mkdir -m 1777 ${shq(`${tmp}/shm`)} ${shq(`${tmp}/mqueue`)}`,
    `mv ${q} ${shq(dir)}`,
  ]
    .map((line, i) => (i === 0 ? line : `${line} || exit 1`))
    .join('; ');
}
