/**
 * Default seccomp profile for container bunkers.
 *
 * Allow-by-default with a denylist, in the spirit of Docker's default profile: the
 * syscalls Docker only grants with CAP_SYS_ADMIN / CAP_SYS_MODULE / CAP_SYS_TIME /
 * CAP_SYS_BOOT / ... (none of which a bunker has) are refused with EPERM, so a kernel bug
 * reachable only through them is not reachable from a bunker at all. Namespace creation
 * (unshare, setns, clone/clone3 with CLONE_NEW*) is refused too: unprivileged user
 * namespaces are the classic way to reach otherwise root-only kernel code.
 *
 * Only the native architecture is listed, so every foreign-ABI syscall (i386 int 0x80,
 * x32) is rejected by libseccomp's bad-arch action instead of slipping past the denylist.
 */

/** An OCI runtime-spec `linux.seccomp` object. */
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  syscalls: Array<{
    names: string[];
    action: string;
    errnoRet?: number;
    args?: Array<{ index: number; value: number; valueTwo?: number; op: string }>;
  }>;
}

const EPERM = 1;
const ENOSYS = 38;

/** Refused outright (EPERM). */
export const DENIED_SYSCALLS: readonly string[] = [
  // mounts and the root filesystem
  'mount',
  'umount',
  'umount2',
  'pivot_root',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'move_mount',
  'open_tree',
  'mount_setattr',
  // namespaces
  'unshare',
  'setns',
  // kernel modules, kexec, reboot
  'init_module',
  'finit_module',
  'delete_module',
  'create_module',
  'kexec_load',
  'kexec_file_load',
  'reboot',
  // kernel attack surface without a use inside a bunker
  'bpf',
  'perf_event_open',
  'userfaultfd',
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
  'keyctl',
  'add_key',
  'request_key',
  'lookup_dcookie',
  'fanotify_init',
  // file handles (container breakouts via open_by_handle_at)
  'open_by_handle_at',
  'name_to_handle_at',
  // host-wide state
  'swapon',
  'swapoff',
  'acct',
  'settimeofday',
  'stime',
  'clock_settime',
  'clock_adjtime',
  'adjtimex',
  'quotactl',
  'quotactl_fd',
  'iopl',
  'ioperm',
  'syslog',
  'vhangup',
  'nfsservctl',
  // obsolete interfaces
  'uselib',
  'ustat',
  'sysfs',
  '_sysctl',
  'get_kernel_syms',
  'query_module',
  'vm86',
  'vm86old',
];

// CLONE_NEW* flags: refused in clone(2) flags (arg 0 on x86_64 and arm64).
const CLONE_NEW_FLAGS: Record<string, number> = {
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
};

export function nativeSeccompArch(arch: string = process.arch): string[] {
  switch (arch) {
    case 'x64':
      return ['SCMP_ARCH_X86_64'];
    case 'arm64':
      return ['SCMP_ARCH_AARCH64'];
    case 'ppc64':
      return ['SCMP_ARCH_PPC64LE'];
    case 's390x':
      return ['SCMP_ARCH_S390X'];
    case 'riscv64':
      return ['SCMP_ARCH_RISCV64'];
    default:
      return [];
  }
}

export function defaultSeccompProfile(arch: string = process.arch): SeccompProfile {
  const syscalls: SeccompProfile['syscalls'] = [{ names: [...DENIED_SYSCALLS], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM }];
  for (const flag of Object.values(CLONE_NEW_FLAGS)) {
    // one rule per flag: rules for the same syscall are OR-ed, (flags & FLAG) == FLAG -> EPERM
    syscalls.push({
      names: ['clone'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      args: [{ index: arch === 's390x' ? 1 : 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
    });
  }
  // clone3 passes its flags in a struct seccomp cannot inspect: ENOSYS makes libcs fall back to clone
  syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: nativeSeccompArch(arch), syscalls };
}
