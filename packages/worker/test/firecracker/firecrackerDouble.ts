/**
 * The Firecracker API double as a process, so the driver spawns, configures and kills it as it
 * would Firecracker: `firecracker-double --api-sock PATH` or `--version`. Test knobs come from
 * the environment: FC_DOUBLE_LOG (NDJSON request log), FC_DOUBLE_FAULT ("PUT /drives/root":
 * refuse that request), FC_DOUBLE_EXIT_ON ("InstanceStart": exit after that action).
 */
import { DOUBLE_VERSION, FirecrackerApiDouble } from './FirecrackerApiDouble.js';

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write(`${DOUBLE_VERSION}\n`);
  process.exit(0);
}
const i = args.indexOf('--api-sock');
const apiSock = i >= 0 ? args[i + 1] : undefined;
if (!apiSock) {
  process.stderr.write('usage: firecracker-double --api-sock PATH\n');
  process.exit(2);
}
const env = process.env;
await new FirecrackerApiDouble({
  apiSock,
  ...(env.FC_DOUBLE_LOG ? { log: env.FC_DOUBLE_LOG } : {}),
  ...(env.FC_DOUBLE_FAULT ? { fault: env.FC_DOUBLE_FAULT } : {}),
  ...(env.FC_DOUBLE_EXIT_ON ? { exitOn: env.FC_DOUBLE_EXIT_ON } : {}),
}).listen();
