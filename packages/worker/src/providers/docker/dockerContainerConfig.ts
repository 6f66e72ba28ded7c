import {
  AGENT_PATH,
  AGENT_RUN_DIR,
  AGENT_SOCKET_NAME,
  CPU_PERIOD_US,
  cpuQuotaUs,
  DEFAULT_CAPABILITIES,
  DEFAULT_PIDS_LIMIT,
} from '../container/OciBundle.js';
import { defaultSeccompProfile, type SeccompProfile } from '../container/seccompProfile.js';

/** Labels on every container of ours: the bunker id, the owning worker (its data dir), the image. */
export const BUNKER_LABEL = 'scaibunker.bunker';
export const OWNER_LABEL = 'scaibunker.owner';
export const IMAGE_SHA_LABEL = 'scaibunker.image';

export interface DockerContainerOptions {
  id: string;
  image: string;
  imageSha256: string;
  owner: string;
  hostname: string;
  /** Host dir bind-mounted at /.scaibunker/run (the agent's socket). */
  agentRunDir: string;
  cpuMillicores: number;
  memoryMb: number;
  /** Size of /tmp (a tmpfs, as with crun) and, with `diskQuota`, of the writable layer. */
  diskMb: number;
  pidsLimit?: number;
  nofile?: number;
  /** Ask the storage driver for a size limit on the writable layer (overlay2 on xfs+pquota, btrfs, zfs). */
  diskQuota: boolean;
  seccomp?: SeccompProfile | null;
}

/**
 * The `POST /containers/create` body of a bunker: the same process, limits and hardening as
 * the OCI config the crun provider writes (buildOciConfig), in Docker's terms. What Docker
 * cannot express is listed in docs/ARCHITECTURE.md (The Docker runtime).
 */
export function dockerContainerConfig(o: DockerContainerOptions): Record<string, unknown> {
  const memBytes = o.memoryMb * 1024 * 1024;
  const nofile = o.nofile ?? 65536;
  const securityOpt = ['no-new-privileges'];
  // Docker takes the profile's JSON itself (what the CLI sends for --security-opt seccomp=file)
  if (o.seccomp !== null) securityOpt.push(`seccomp=${JSON.stringify(o.seccomp ?? defaultSeccompProfile())}`);
  return {
    Image: o.image,
    Entrypoint: [AGENT_PATH],
    Cmd: ['--listen', `${AGENT_RUN_DIR}/${AGENT_SOCKET_NAME}`],
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'container=scaibunker'],
    WorkingDir: '/',
    User: '0:0',
    Hostname: o.hostname,
    NetworkDisabled: true,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    OpenStdin: false,
    Tty: false,
    Labels: { [BUNKER_LABEL]: o.id, [OWNER_LABEL]: o.owner, [IMAGE_SHA_LABEL]: o.imageSha256 },
    HostConfig: {
      NetworkMode: 'none',
      IpcMode: 'private',
      PidMode: '',
      CgroupnsMode: 'private',
      Binds: [`${o.agentRunDir}:${AGENT_RUN_DIR}:rw`],
      Tmpfs: { '/tmp': `rw,nosuid,nodev,mode=1777,size=${o.diskMb}m` },
      ShmSize: 64 * 1024 * 1024,
      CpuPeriod: CPU_PERIOD_US,
      CpuQuota: cpuQuotaUs(o.cpuMillicores),
      CpuShares: Math.max(2, Math.round((o.cpuMillicores * 1024) / 1000)),
      Memory: memBytes,
      // memory + swap: equal to the limit means no swap (ignored with a warning where the host cannot account swap)
      MemorySwap: memBytes,
      PidsLimit: o.pidsLimit ?? DEFAULT_PIDS_LIMIT,
      Ulimits: [{ Name: 'nofile', Soft: nofile, Hard: nofile }],
      OomScoreAdj: 500,
      CapDrop: ['ALL'],
      CapAdd: [...DEFAULT_CAPABILITIES],
      SecurityOpt: securityOpt,
      // ping without CAP_NET_RAW (a namespaced sysctl of the bunker's own netns)
      Sysctls: { 'net.ipv4.ping_group_range': '0 2147483647' },
      ...(o.diskQuota ? { StorageOpt: { size: `${o.diskMb}M` } } : {}),
      Init: false,
      Privileged: false,
      ReadonlyRootfs: false,
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
      // the agent's own diagnostics, kept small: read on a failed spawn
      LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
    },
  };
}
