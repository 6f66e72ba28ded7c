/** The writable layer as a GNU tar, shared by the providers whose layer is an overlay upper dir (crun/runc, Docker's overlay2). */
import { runCommand } from '../host/runCommand.js';
import { ProviderError } from '../Provider.js';
import { findExecutable } from './OciRuntime.js';

/** Options both ways: the overlay's own xattrs (opaque dirs, redirects), numeric ids, holes kept. */
const TAR_LAYER_OPTS = ['--xattrs', '--xattrs-include=trusted.overlay.*', '--numeric-owner', '--sparse'];

export function tarCreateArgs(upperData: string): string[] {
  return ['--create', '--file=-', ...TAR_LAYER_OPTS, '--one-file-system', '--directory', upperData, '.'];
}

export function tarExtractArgs(archive: string, upperData: string): string[] {
  // -p and root: modes, owners, setuid bits and whiteout devices as archived
  return ['--extract', `--file=${archive}`, ...TAR_LAYER_OPTS, '--preserve-permissions', '--same-owner', '--directory', upperData];
}

let gnuTarPath: Promise<string> | undefined;

/** The host's GNU tar (busybox tar knows neither xattrs nor whiteouts): its absolute path. */
export function gnuTar(): Promise<string> {
  gnuTarPath ??= (async () => {
    const bin = findExecutable('tar');
    const version = bin ? await runCommand(bin, ['--version'], { timeoutMs: 10_000 }).catch(() => undefined) : undefined;
    if (!bin || !version || !/GNU tar/.test(version.stdout))
      throw new ProviderError('RUNTIME_UNAVAILABLE', 'snapshots need GNU tar on the host');
    return bin;
  })();
  gnuTarPath.catch(() => {
    gnuTarPath = undefined;
  });
  return gnuTarPath;
}
