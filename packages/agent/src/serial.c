/* --serial: the agent channel is a virtio-serial port (VMs: the microvm provider).
 *
 * The port is ONE connection of the ordinary protocol (same framing, streams and flow
 * control as a Unix-socket connection; conn.c does all of that). What differs is the
 * connection lifecycle, which follows the host end of the port (QEMU's chardev):
 *
 *   waiting    the port is open but no host client is attached. The virtio_console
 *              driver then reports EPOLLIN|EPOLLHUP permanently and read() returns 0, so
 *              the fd is watched edge-triggered: the driver wakes its waitqueue when the
 *              host opens the port, and the first event without EPOLLHUP means "connected".
 *   connected  the fd becomes a struct conn (level-triggered, like an accepted socket).
 *              When the host goes away, read() returns 0 (EPOLLHUP): conn.c closes the
 *              connection exactly like a closed socket (its execs are killed, unfinished
 *              writes dropped), and serial_tick() reopens the port and waits again, so a
 *              host reconnect (e.g. a worker restart) gets a fresh connection. Opening the
 *              port makes the driver discard bytes left over from the previous host.
 *
 * Every connection starts with the agent's HELLO frame (conn_hello). The host must wait for
 * it before sending: bytes it writes before the agent has (re)opened the port are lost.
 *
 * PATH is either the device (/dev/vport0p1) or the port's name (org.scaibunker.agent),
 * looked up in /sys/class/virtio-ports/ * /name.
 */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define SERIAL_RETRY_NS (100LL * 1000000LL) /* reopen after a failed open */
#define PORTS_DIR "/sys/class/virtio-ports"

static const char *g_spec;
static struct src g_wait = { .kind = K_SERIAL, .fd = -1 };
static struct conn *g_conn;   /* the live connection, NULL while waiting */
static int64_t g_retry_at;    /* 0 = no reopen scheduled */
static int g_logged_failure;

/* Resolves a port name to /dev/<port>; a path is used as is. */
static int serial_resolve(const char *spec, char *out, size_t n)
{
    if (spec[0] == '/') {
        if (strlen(spec) >= n) return -1;
        strcpy(out, spec);
        return 0;
    }
    DIR *d = opendir(PORTS_DIR);
    if (!d) return -1;
    struct dirent *e;
    int found = -1;
    while (found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[PATH_MAX], name[256];
        snprintf(p, sizeof p, PORTS_DIR "/%s/name", e->d_name);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t r = read(fd, name, sizeof name - 1);
        close(fd);
        if (r <= 0) continue;
        name[r] = 0;
        name[strcspn(name, "\n")] = 0;
        if (!strcmp(name, spec) && (size_t)snprintf(out, n, "/dev/%s", e->d_name) < n) found = 0;
    }
    closedir(d);
    return found;
}

/* Opens the port and waits (edge-triggered) for the host. 0, or -1 with a retry scheduled. */
static int serial_open(void)
{
    char path[PATH_MAX];
    g_retry_at = 0;
    if (serial_resolve(g_spec, path, sizeof path)) {
        if (!g_logged_failure++) logmsg("serial: no virtio-serial port %s (retrying)", g_spec);
        g_retry_at = now_ns() + SERIAL_RETRY_NS;
        return -1;
    }
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (!g_logged_failure++) logmsg("serial: open %s: %s (retrying)", path, strerror(errno));
        g_retry_at = now_ns() + SERIAL_RETRY_NS;
        return -1;
    }
    g_logged_failure = 0;
    src_init(&g_wait, K_SERIAL, fd, NULL);
    /* an fd that is already connected reports EPOLLOUT at once (epoll checks on add) */
    src_want(&g_wait, EPOLLIN | EPOLLOUT | EPOLLET);
    return 0;
}

int serial_start(const char *spec)
{
    g_spec = spec;
    return serial_open();
}

/* Event on the waiting fd. EPOLLHUP: still no host; anything else: the host is there. */
void serial_event(uint32_t events)
{
    if (g_wait.fd < 0 || (events & EPOLLHUP)) return;
    if (events & EPOLLERR) {
        logmsg("serial: port error, reopening");
        src_close(&g_wait);
        g_retry_at = now_ns() + SERIAL_RETRY_NS;
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) return; /* stays registered; the next host event retries */
    int fd = g_wait.fd;
    src_want(&g_wait, 0);
    g_wait.fd = -1;
    src_init(&c->sock, K_CONN, fd, c);
    c->next = g_conns;
    g_conns = c;
    src_want(&c->sock, EPOLLIN);
    g_conn = c;
    /* The host must wait for this before its first request: what it sent while the port was
     * not (re)opened yet was discarded by the driver. */
    conn_hello(c);
}

/* Called before reap_graveyard() (a closed conn is still readable there): reopens the port
 * when the connection died, or when a scheduled retry is due. */
void serial_tick(void)
{
    if (!g_spec) return;
    if (g_conn && g_conn->dead) {
        g_conn = NULL;
        serial_open();
    } else if (!g_conn && g_wait.fd < 0 && g_retry_at && now_ns() >= g_retry_at) {
        serial_open();
    }
}

int64_t serial_deadline(void)
{
    return g_retry_at;
}
