/* scaibunker-agent: PID 1 of a bunker and the server end of the agent channel.
 *
 *   scaibunker-agent --listen /.scaibunker/run/agent.sock [--no-init]
 *   scaibunker-agent --serial /dev/vport0p1|org.scaibunker.agent [--no-init]   (VMs, serial.c)
 *   scaibunker-agent --vsock PORT [--no-init]   (Firecracker VMs: connections over virtio-vsock)
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

int g_epfd = -1;
int64_t g_start_ns;
struct src g_listen, g_sig;
extern int g_no_children;

static const char *g_sock_path;
static const char *g_vsock_port; /* --vsock: listen on this AF_VSOCK port instead of a Unix socket */
static const char *g_serial_port; /* --serial */
static int g_is_init;
static int64_t g_shutdown_deadline; /* 0 = running */

#define SHUTDOWN_GRACE_NS (3LL * 1000000000LL)

/* After this long with nothing to do, the agent gives the heap pages its requests touched back
 * to the kernel (idle connection buffers freed, then malloc_trim, then the stack below the
 * loop). An idle bunker is mostly this process, and thousands of them sit idle on one host; a
 * busy agent never waits this long, so it never pays for the trim. */
#define IDLE_TRIM_MS 1000

/* The stack pages below the loop's frame were touched by the deepest request so far (path
 * buffers, error messages, printf) and stay resident until the process exits; after a quiet
 * spell they are given back with the heap. The stack's mapping ends where mincore() finds an
 * unmapped page (the guard gap under it), looked for no further than the stack's rlimit; no
 * /proc lookup, as every inode one makes in the bunker's procfs stays, charged to the bunker.
 * Nothing below `sp` is live once madvise is called but the call's return address (the
 * syscall wrapper keeps no frame): the 256 bytes under `sp` left alone are a margin. */
static void release_unused_stack(void)
{
    static uintptr_t limit; /* how far under the loop the stack may reach */
    if (!limit) {
        struct rlimit rl;
        limit = getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur < (64u << 20) ? rl.rlim_cur : (64u << 20);
    }
    char here;
    uintptr_t sp = (uintptr_t)&here;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t keep = (sp - 256) & ~(page - 1); /* from here up the pages stay */
    uintptr_t lo = keep;
    unsigned char resident;
    while (keep - (lo - page) <= limit && mincore((void *)(lo - page), page, &resident) == 0) lo -= page;
    if (lo < keep) madvise((void *)lo, keep - lo, MADV_DONTNEED);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: scaibunker-agent --listen SOCKET_PATH [--no-init]\n"
            "       scaibunker-agent --serial PORT_DEVICE|PORT_NAME [--no-init]\n"
            "       scaibunker-agent --vsock PORT [--no-init]\n"
            "       scaibunker-agent --version\n"
            "\n"
            "Serves the ScaiBunker agent protocol (see PROTOCOL.md) on a Unix socket.\n"
            "As PID 1 it also reaps orphans, forwards shutdown and brings up lo.\n"
            "--no-init skips PID-1 duties (implied when pid != 1).\n");
}

static void loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr)) logmsg("bringing up lo: %s", strerror(errno));
    }
    close(fd);
}

/* Children get fds 0-2 from dup2; make sure our own 0-2 are taken so no pipe
 * or socket we create lands there. */
static void ensure_stdio(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0) continue;
        int n = open("/dev/null", O_RDWR);
        if (n < 0) n = open("/", O_RDONLY);
        if (n >= 0 && n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
}

static int listen_on(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        logmsg("socket path too long: %s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);

    char dir[sizeof sa.sun_path];
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        mkdir_parents(dir, 0700);
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            logmsg("%s exists and is not a socket", path);
            return -1;
        }
        unlink(path); /* stale socket from a previous run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        logmsg("socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177); /* the socket is born 0600: no window where others may connect */
    int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (r) {
        logmsg("bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    chmod(path, 0600);
    if (listen(fd, 64)) {
        logmsg("listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* --vsock: every guest CID's PORT (the VMM's vsock device proxies the host's connections to it);
 * an accepted connection is an ordinary one, exactly like an accepted Unix-socket connection. */
static int listen_vsock(const char *port_text)
{
    char *end;
    unsigned long port = strtoul(port_text, &end, 10);
    if (!*port_text || *end || port == 0 || port > 0xfffffffeUL) {
        logmsg("--vsock: not a port number: %s", port_text);
        return -1;
    }
    struct sockaddr_vm sa;
    memset(&sa, 0, sizeof sa);
    sa.svm_family = AF_VSOCK;
    sa.svm_cid = VMADDR_CID_ANY;
    sa.svm_port = (unsigned int)port;
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        logmsg("vsock socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 64)) {
        logmsg("vsock port %lu: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void finish(int code)
{
    if (g_sock_path && g_listen.fd >= 0) unlink(g_sock_path);
    exit(code);
}

static void begin_shutdown(int sig)
{
    if (!g_is_init) {
        /* ordinary process: our execs die with us */
        exec_kill_all(SIGKILL);
        finish(0);
    }
    if (g_shutdown_deadline) { /* second signal: stop waiting */
        kill(-1, SIGKILL);
        finish(0);
    }
    logmsg("received %s: terminating all processes", sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (g_listen.fd >= 0) {
        if (g_sock_path) unlink(g_sock_path);
        src_close(&g_listen);
    }
    kill(-1, SIGTERM); /* everything but us */
    g_shutdown_deadline = now_ns() + SHUTDOWN_GRACE_NS;
    g_no_children = 0;
    exec_reap_all();
    if (g_no_children) finish(0);
}

static void on_signals(void)
{
    struct signalfd_siginfo si;
    int chld = 0;
    while (read(g_sig.fd, &si, sizeof si) == (ssize_t)sizeof si) {
        switch (si.ssi_signo) {
        case SIGCHLD: chld = 1; break;
        case SIGTERM:
        case SIGINT:
        case SIGQUIT: begin_shutdown((int)si.ssi_signo); break;
        default: break; /* SIGHUP etc.: ignored */
        }
    }
    if (chld) exec_reap_all();
    if (g_shutdown_deadline && g_no_children) finish(0);
}

int main(int argc, char **argv)
{
    int no_init = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc) g_sock_path = argv[++i];
        else if (!strncmp(argv[i], "--listen=", 9)) g_sock_path = argv[i] + 9;
        else if (!strcmp(argv[i], "--serial") && i + 1 < argc) g_serial_port = argv[++i]; /* --serial */
        else if (!strncmp(argv[i], "--serial=", 9)) g_serial_port = argv[i] + 9;            /* --serial */
        else if (!strcmp(argv[i], "--vsock") && i + 1 < argc) g_vsock_port = argv[++i];
        else if (!strncmp(argv[i], "--vsock=", 8)) g_vsock_port = argv[i] + 8;
        else if (!strcmp(argv[i], "--no-init")) no_init = 1;
        else if (!strcmp(argv[i], "--version")) {
            printf("scaibunker-agent %s (protocol %d)\n", AGENT_VERSION, PROTOCOL_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!g_sock_path && !g_serial_port && !g_vsock_port) {
        usage(stderr);
        return 2;
    }
    g_start_ns = now_ns();
    g_is_init = getpid() == 1 && !no_init;
    g_listen.fd = -1;

    ensure_stdio();
    umask(0); /* file modes from requests are exact; children get 022 */
    if (g_is_init) loopback_up();
    else prctl(PR_SET_CHILD_SUBREAPER, 1); /* orphans of our execs come back to us */

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_epfd < 0) {
        logmsg("epoll_create1: %s", strerror(errno));
        return 1;
    }
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        logmsg("signalfd: %s", strerror(errno));
        return 1;
    }
    src_init(&g_sig, K_SIGNAL, sfd, NULL);
    src_want(&g_sig, EPOLLIN);

    /* --serial: the port instead of (or besides) the socket */
    if (g_serial_port && serial_start(g_serial_port) && !g_is_init) return 1;
    int lfd = g_sock_path ? listen_on(g_sock_path) : g_vsock_port ? listen_vsock(g_vsock_port) : -1;
    if (lfd < 0 && !g_sock_path && !g_vsock_port) {
        /* serial only: nothing to listen on */
    } else if (lfd < 0) {
        if (!g_is_init) return 1;
        /* PID 1 must not exit (that kills the bunker); keep reaping. */
        logmsg("cannot serve; running as a plain init");
    } else {
        src_init(&g_listen, K_LISTEN, lfd, NULL);
        src_want(&g_listen, EPOLLIN);
    }

    struct epoll_event evs[64];
    int trimmed = 0; /* the heap was trimmed and nothing has happened since */
    for (;;) {
        int64_t now = now_ns();
        int64_t dl = exec_check_timeouts(now);
        if (g_shutdown_deadline && (!dl || g_shutdown_deadline < dl)) dl = g_shutdown_deadline;
        int timeout = -1;
        if (runq_run()) timeout = 0;
        conn_flush_all();
        serial_tick(); /* --serial */
        reap_graveyard();
        if (g_serial_port) { /* --serial: reopen retry */
            int64_t sdl = serial_deadline();
            if (sdl && (!dl || sdl < dl)) dl = sdl;
        }
        if (timeout && dl) {
            now = now_ns();
            int64_t ms = dl > now ? (dl - now + 999999) / 1000000 : 0;
            timeout = ms > 60000 ? 60000 : (int)ms;
        }
        int trim_wait = !trimmed && (timeout < 0 || timeout > IDLE_TRIM_MS);
        int n = epoll_wait(g_epfd, evs, 64, trim_wait ? IDLE_TRIM_MS : timeout);
        if (n < 0 && errno != EINTR) {
            logmsg("epoll_wait: %s", strerror(errno));
            return 1;
        }
        if (n == 0 && trim_wait) {
            conn_release_idle_buffers();
            malloc_trim(0);
            release_unused_stack();
            trimmed = 1;
            continue; /* back to the wait it would have done */
        }
        if (n > 0) trimmed = 0;
        for (int i = 0; i < n; i++) {
            struct src *s = evs[i].data.ptr;
            if (s->fd < 0) continue; /* closed earlier in this batch */
            switch (s->kind) {
            case K_LISTEN: conn_accept(s->fd); break;
            case K_SIGNAL: on_signals(); break;
            case K_CONN: conn_event(s->owner, evs[i].events); break;
            case K_SERIAL: serial_event(evs[i].events); break; /* --serial */
            case K_WATCH: watch_event(s); break;
            case K_TUNNEL: tunnel_event(s, evs[i].events); break;
            default: exec_event(s, evs[i].events); break;
            }
        }
        if (g_shutdown_deadline && now_ns() >= g_shutdown_deadline) {
            kill(-1, SIGKILL);
            finish(0);
        }
        conn_flush_all();
        serial_tick(); /* --serial */
        reap_graveyard();
    }
}
