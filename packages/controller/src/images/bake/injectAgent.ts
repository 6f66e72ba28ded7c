import { constants, createReadStream } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readFile, rm, unlink, utimes } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { BakeError } from './BakeError.js';
import { EXCLUSIVE_CREATE } from './LayerApplier.js';
import { resolveInRoot } from './rootfsPaths.js';

/** The unprivileged account every image gets, as scripts/build-images.sh's add_user makes it. */
const USER = { name: 'user', uid: 1000, gid: 1000, home: '/home/user', shell: '/bin/sh' };

/**
 * Makes a rootfs a ScaiBunker image, mirroring inject_agent and add_user in
 * scripts/build-images.sh: /.scaibunker/agent (0755), an empty /.scaibunker/run (0700), and user
 * `user` (uid/gid 1000, /home/user). Every path goes through resolveInRoot: the image's own
 * symlinks (an `etc -> /host/etc` planted by a layer) cannot redirect these writes out of the root.
 * Files and directories written here get `epoch` as mtime, so the result does not depend on the clock.
 */
export async function injectAgent(root: string, agentBinary: string, epoch: Date): Promise<void> {
  const what = 'agent injection';

  const dir = await resolveInRoot(root, ['.scaibunker'], { followFinal: false, what });
  await ensureDirectory(dir.abs, 0o755, 0, 0, epoch);

  const agent = await resolveInRoot(root, ['.scaibunker', 'agent'], { followFinal: false, what });
  await removeAny(agent.abs);
  const fh = await open(agent.abs, EXCLUSIVE_CREATE, 0o600);
  await pipeline(createReadStream(agentBinary), fh.createWriteStream()); // the stream closes fh when done
  await chown(agent.abs, 0, 0);
  await chmod(agent.abs, 0o755);
  await utimes(agent.abs, epoch, epoch);

  const run = await resolveInRoot(root, ['.scaibunker', 'run'], { followFinal: false, what });
  await removeAny(run.abs);
  await ensureDirectory(run.abs, 0o700, 0, 0, epoch);

  await addUser(root, epoch);
}

async function addUser(root: string, epoch: Date): Promise<void> {
  const what = 'adding user';
  const etc = await resolveInRoot(root, ['etc'], { followFinal: true, what });
  const etcStat = await lstat(etc.abs).catch(() => undefined);
  if (!etcStat) await ensureDirectory(etc.abs, 0o755, 0, 0, epoch);
  await ensureLine(root, 'group', `${USER.name}:x:${USER.gid}:`, 'root:x:0:', epoch);
  await ensureLine(
    root,
    'passwd',
    `${USER.name}:x:${USER.uid}:${USER.gid}:${USER.name}:${USER.home}:${USER.shell}`,
    'root:x:0:0:root:/root:/bin/sh',
    epoch,
  );
  await ensureLine(root, 'shadow', `${USER.name}:*:19000:0:99999:7:::`, undefined, epoch);

  const home = await resolveInRoot(root, ['home', 'user'], { followFinal: true, what });
  await ensureDirectory(home.abs, 0o755, USER.uid, USER.gid, epoch);
}

/**
 * Appends `line` to /etc/<file> unless a line for the same account is there. A missing file is
 * created with `rootLine` first (passwd, group); with no `rootLine` (shadow) it is left absent.
 */
async function ensureLine(root: string, file: string, line: string, rootLine: string | undefined, epoch: Date): Promise<void> {
  const target = await resolveInRoot(root, ['etc', file], { followFinal: true, what: `/etc/${file}` });
  const st = await lstat(target.abs).catch(() => undefined);
  if (st && !st.isFile()) throw new BakeError('INVALID_SOURCE', `the image's /etc/${file} is not a regular file`);
  if (!st && rootLine === undefined) return;
  const account = `${line.slice(0, line.indexOf(':'))}:`;
  let text = st ? await readFile(target.abs, 'utf8') : `${rootLine}\n`;
  if (st && text.split('\n').some((l) => l.startsWith(account))) return;
  if (text !== '' && !text.endsWith('\n')) text += '\n';
  text += `${line}\n`;
  // Rewrite in place (O_NOFOLLOW) so the file keeps its owner and mode (shadow is 0640 root:shadow).
  const fh = await open(target.abs, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
  try {
    await fh.writeFile(text);
    if (!st) {
      await fh.chown(0, 0);
      await fh.chmod(0o644);
    }
    await fh.utimes(epoch, epoch);
  } finally {
    await fh.close();
  }
}

async function removeAny(abs: string): Promise<void> {
  const st = await lstat(abs).catch(() => undefined);
  if (st?.isDirectory()) await rm(abs, { recursive: true, force: true });
  else if (st) await unlink(abs);
}

/** A real directory at `abs` (a symlink or file there is replaced) with exactly this mode and owner. */
async function ensureDirectory(abs: string, mode: number, uid: number, gid: number, epoch: Date): Promise<void> {
  const st = await lstat(abs).catch(() => undefined);
  if (!st?.isDirectory()) {
    if (st) await unlink(abs);
    await mkdir(abs);
  }
  await chown(abs, uid, gid);
  await chmod(abs, mode);
  await utimes(abs, epoch, epoch);
}
