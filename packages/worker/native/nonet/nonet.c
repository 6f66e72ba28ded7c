/* scaibunker-nonet: runs a command with no network: socket(2) and socketpair(2) are refused
 * (EAFNOSUPPORT) for every address family but AF_UNIX, and io_uring (which can open sockets
 * without socket(2)) and every non-native syscall ABI are refused (ENOSYS).
 *
 *   scaibunker-nonet COMMAND [ARG...]
 *
 * The proot provider's way to give the `isolated` network profile on a host where the worker
 * can make no network namespace: the filter is installed before proot is exec'd, so proot and
 * every process it traces inherit it (seccomp filters survive fork and execve and cannot be
 * removed). Sets no_new_privs, which an unprivileged process needs to install a filter.
 * What it does not stop: abstract AF_UNIX sockets of the host (documented in ARCHITECTURE.md).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#define X32_BIT 0x40000000u
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "scaibunker-nonet: unsupported architecture"
#endif

#define RET_ERRNO(e) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
#define LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: scaibunker-nonet COMMAND [ARG...]\n");
        return 2;
    }
    struct sock_filter filter[] = {
        /* [0] a foreign ABI (e.g. i386's socketcall) would bypass the checks below */
        LOAD(arch),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
        RET_ERRNO(ENOSYS),
        LOAD(nr),
#ifdef X32_BIT
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_BIT, 0, 1),
        RET_ERRNO(ENOSYS),
#endif
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        RET_ERRNO(ENOSYS),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socketpair, 0, 3),
        /* socket / socketpair: the family is the low 32 bits of the first argument */
        LOAD(args[0]),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 1, 0),
        RET_ERRNO(EAFNOSUPPORT),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof filter / sizeof filter[0], .filter = filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
        fprintf(stderr, "scaibunker-nonet: no_new_privs: %s\n", strerror(errno));
        return 125;
    }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        fprintf(stderr, "scaibunker-nonet: seccomp: %s\n", strerror(errno));
        return 125;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "scaibunker-nonet: %s: %s\n", argv[1], strerror(errno));
    return 127;
}
