#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

/* ---- buffers ------------------------------------------------------------ */

int buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->off - b->len >= n) return 0;
    if (b->off && b->cap - b->len >= n) { /* compact */
        memmove(b->p, b->p + b->off, b->len);
        b->off = 0;
        return 0;
    }
    size_t need = b->len + n;
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < need) nc *= 2;
    char *np = malloc(nc);
    if (!np) return -1;
    if (b->len) memcpy(np, b->p + b->off, b->len);
    free(b->p);
    b->p = np;
    b->off = 0;
    b->cap = nc;
    return 0;
}

void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0) {
        b->off = 0;
        if (b->cap > 64 * 1024) buf_free(b); /* give big buffers back while idle */
    }
}

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->off = b->len = b->cap = 0;
}

int buf_append(struct buf *b, const void *d, size_t n)
{
    if (buf_reserve(b, n)) return -1;
    memcpy(buf_tail(b), d, n);
    b->len += n;
    return 0;
}

int buf_putc(struct buf *b, char ch) { return buf_append(b, &ch, 1); }
int buf_puts(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    char tmp[512];
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n < sizeof tmp) return buf_append(b, tmp, (size_t)n);
    if (buf_reserve(b, (size_t)n + 1)) return -1;
    va_start(ap, fmt);
    vsnprintf(buf_tail(b), (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* ---- JSON output ---------------------------------------------------------- */

/* Length of a valid UTF-8 sequence at s (max n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;
        if (c == 0xED && s[1] > 0x9F) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;
        if (c == 0xF4 && s[1] > 0x8F) return 0;
        return 4;
    }
    return 0;
}

void json_str(struct buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    buf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)c);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': buf_puts(b, "\\n"); break;
            case '\r': buf_puts(b, "\\r"); break;
            case '\t': buf_puts(b, "\\t"); break;
            default: buf_printf(b, "\\u%04x", c);
            }
            i++;
        } else if (c < 0x80) {
            size_t j = i;
            while (j < n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\') j++;
            buf_append(b, s + i, j - i);
            i = j;
        } else {
            size_t l = utf8_len(s + i, n - i);
            if (l) {
                buf_append(b, s + i, l);
                i += l;
            } else {
                buf_puts(b, "\\ufffd"); /* invalid UTF-8 byte */
                i++;
            }
        }
    }
    buf_putc(b, '"');
}

void json_key(struct buf *b, const char *key)
{
    if (b->len && buf_data(b)[b->len - 1] != '{') buf_putc(b, ',');
    json_str(b, key, strlen(key));
    buf_putc(b, ':');
}

/* ---- misc ----------------------------------------------------------------- */

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        logmsg("out of memory");
        abort();
    }
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *np = realloc(p, n ? n : 1);
    if (!np) {
        logmsg("out of memory");
        abort();
    }
    return np;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

void logmsg(const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof tmp - 2) n = sizeof tmp - 2;
    tmp[n++] = '\n';
    static const char pfx[] = "scaibunker-agent: ";
    ssize_t r = write(2, pfx, sizeof pfx - 1);
    if (r >= 0) r = write(2, tmp, (size_t)n);
    (void)r;
}

int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

struct ename {
    int e;
    const char *name, *code;
};

static const struct ename enames[] = {
    { ENOENT, "ENOENT", "NOT_FOUND" },
    { ENOTDIR, "ENOTDIR", "NOT_A_DIRECTORY" },
    { EISDIR, "EISDIR", "IS_A_DIRECTORY" },
    { EEXIST, "EEXIST", "ALREADY_EXISTS" },
    { EACCES, "EACCES", "PERMISSION_DENIED" },
    { EPERM, "EPERM", "PERMISSION_DENIED" },
    { EROFS, "EROFS", "PERMISSION_DENIED" },
    { ETXTBSY, "ETXTBSY", "PERMISSION_DENIED" },
    { ENOTEMPTY, "ENOTEMPTY", "NOT_EMPTY" },
    { ENAMETOOLONG, "ENAMETOOLONG", "INVALID_PATH" },
    { ELOOP, "ELOOP", "INVALID_PATH" },
    { ENOSPC, "ENOSPC", "NO_SPACE" },
    { EDQUOT, "EDQUOT", "NO_SPACE" },
    { EFBIG, "EFBIG", "NO_SPACE" },
    { EINVAL, "EINVAL", "IO_ERROR" },
    { EIO, "EIO", "IO_ERROR" },
    { EBUSY, "EBUSY", "IO_ERROR" },
    { EXDEV, "EXDEV", "IO_ERROR" },
    { EMFILE, "EMFILE", "IO_ERROR" },
    { ENFILE, "ENFILE", "IO_ERROR" },
    { ENOMEM, "ENOMEM", "IO_ERROR" },
    { EBADF, "EBADF", "IO_ERROR" },
    { EAGAIN, "EAGAIN", "IO_ERROR" },
    { EINTR, "EINTR", "IO_ERROR" },
    { EMLINK, "EMLINK", "IO_ERROR" },
    { ENXIO, "ENXIO", "IO_ERROR" },
    { ENODEV, "ENODEV", "IO_ERROR" },
    { EOVERFLOW, "EOVERFLOW", "IO_ERROR" },
    { ESTALE, "ESTALE", "IO_ERROR" },
    { EOPNOTSUPP, "EOPNOTSUPP", "IO_ERROR" },
    { ENOEXEC, "ENOEXEC", "IO_ERROR" },
    { E2BIG, "E2BIG", "IO_ERROR" },
    { ESRCH, "ESRCH", "IO_ERROR" },
    { EPIPE, "EPIPE", "IO_ERROR" },
    { ECONNREFUSED, "ECONNREFUSED", "PORT_NOT_LISTENING" },
    { ECONNRESET, "ECONNRESET", "IO_ERROR" },
    { ECONNABORTED, "ECONNABORTED", "IO_ERROR" },
    { ETIMEDOUT, "ETIMEDOUT", "IO_ERROR" },
    { EADDRNOTAVAIL, "EADDRNOTAVAIL", "IO_ERROR" },
    { ENETUNREACH, "ENETUNREACH", "IO_ERROR" },
    { ENOTCONN, "ENOTCONN", "IO_ERROR" },
};

const char *errno_name(int e)
{
    for (size_t i = 0; i < sizeof enames / sizeof enames[0]; i++)
        if (enames[i].e == e) return enames[i].name;
    return "EUNKNOWN";
}

const char *errno_code(int e)
{
    for (size_t i = 0; i < sizeof enames / sizeof enames[0]; i++)
        if (enames[i].e == e) return enames[i].code;
    return "IO_ERROR";
}

static const struct {
    int sig;
    const char *name;
} signames[] = {
    { SIGHUP, "SIGHUP" },   { SIGINT, "SIGINT" },       { SIGQUIT, "SIGQUIT" },   { SIGILL, "SIGILL" },
    { SIGTRAP, "SIGTRAP" }, { SIGABRT, "SIGABRT" },     { SIGBUS, "SIGBUS" },     { SIGFPE, "SIGFPE" },
    { SIGKILL, "SIGKILL" }, { SIGUSR1, "SIGUSR1" },     { SIGSEGV, "SIGSEGV" },   { SIGUSR2, "SIGUSR2" },
    { SIGPIPE, "SIGPIPE" }, { SIGALRM, "SIGALRM" },     { SIGTERM, "SIGTERM" },   { SIGSTKFLT, "SIGSTKFLT" },
    { SIGCHLD, "SIGCHLD" }, { SIGCONT, "SIGCONT" },     { SIGSTOP, "SIGSTOP" },   { SIGTSTP, "SIGTSTP" },
    { SIGTTIN, "SIGTTIN" }, { SIGTTOU, "SIGTTOU" },     { SIGURG, "SIGURG" },     { SIGXCPU, "SIGXCPU" },
    { SIGXFSZ, "SIGXFSZ" }, { SIGVTALRM, "SIGVTALRM" }, { SIGPROF, "SIGPROF" },   { SIGWINCH, "SIGWINCH" },
    { SIGIO, "SIGIO" },     { SIGPWR, "SIGPWR" },       { SIGSYS, "SIGSYS" },
};

const char *signal_name(int sig, char *scratch, size_t n)
{
    for (size_t i = 0; i < sizeof signames / sizeof signames[0]; i++)
        if (signames[i].sig == sig) return signames[i].name;
    snprintf(scratch, n, "SIG%d", sig);
    return scratch;
}

/* Accepts "SIGTERM", "TERM" or a decimal number. Returns -1 if unknown. */
int signal_from_name(const char *s)
{
    if (!s || !*s) return -1;
    if (*s >= '0' && *s <= '9') {
        char *end;
        long v = strtol(s, &end, 10);
        return *end || v < 1 || v > 64 ? -1 : (int)v;
    }
    for (size_t i = 0; i < sizeof signames / sizeof signames[0]; i++) {
        const char *n = signames[i].name;
        if (!strcmp(s, n) || !strcmp(s, n + 3)) return signames[i].sig;
    }
    return -1;
}

/* ---- epoll sources -------------------------------------------------------- */
#include <sys/epoll.h>

void src_init(struct src *s, int kind, int fd, void *owner)
{
    s->kind = kind;
    s->fd = fd;
    s->events = 0;
    s->owner = owner;
}

/* Level-triggered. Interest 0 removes the fd from epoll entirely, because a
 * registered fd always reports EPOLLHUP (e.g. a pipe whose writer exited while
 * we have no credit to read it) and would spin the loop. */
void src_want(struct src *s, uint32_t events)
{
    if (s->fd < 0 || s->events == events) return;
    struct epoll_event ev = { .events = events, .data.ptr = s };
    if (events == 0) {
        epoll_ctl(g_epfd, EPOLL_CTL_DEL, s->fd, NULL);
    } else if (s->events == 0) {
        if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, s->fd, &ev)) logmsg("epoll add fd %d: %s", s->fd, strerror(errno));
    } else {
        epoll_ctl(g_epfd, EPOLL_CTL_MOD, s->fd, &ev);
    }
    s->events = events;
}

void src_close(struct src *s)
{
    if (s->fd < 0) return;
    src_want(s, 0);
    close(s->fd);
    s->fd = -1;
}

/* An exec is its own session (setsid). Killing its process group misses jobs a shell put in
 * groups of their own (`cmd &` in an interactive shell): those keep the session id, so the
 * session is what "the exec" means when it is killed. Processes that called setsid() left it. */
void kill_session(pid_t sid)
{
    DIR *d = opendir("/proc");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 1) continue;
        char path[64], stat[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, stat, sizeof stat - 1);
        close(fd);
        if (n <= 0) continue;
        stat[n] = '\0';
        /* pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses */
        char *rp = strrchr(stat, ')');
        long ppid, pgrp, session;
        char state;
        if (!rp || sscanf(rp + 1, " %c %ld %ld %ld", &state, &ppid, &pgrp, &session) != 4) continue;
        if (session == (long)sid) kill((pid_t)pid, SIGKILL);
    }
    closedir(d);
}
