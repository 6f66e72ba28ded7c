/* Connections: framing, stream table, flow control bookkeeping, dispatch. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn *g_conns;
extern struct src g_listen;
static int g_listen_paused;

static struct conn *grave_conns;
static struct stream *grave_streams;
static struct stream *runq_head, *runq_tail;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* ---- output ---------------------------------------------------------------- */

char *frame_begin(struct conn *c, size_t max_payload)
{
    if (buf_reserve(&c->out, HDR_SIZE + max_payload)) return NULL;
    return buf_tail(&c->out) + HDR_SIZE;
}

void frame_commit(struct conn *c, uint32_t id, uint8_t type, size_t payload_len)
{
    unsigned char *h = (unsigned char *)buf_tail(&c->out);
    put_be32(h, (uint32_t)payload_len);
    put_be32(h + 4, id);
    h[8] = type;
    c->out.len += HDR_SIZE + payload_len;
}

void send_frame(struct conn *c, uint32_t id, uint8_t type, const void *p, size_t n)
{
    if (c->dead) return;
    char *dst = frame_begin(c, n);
    if (!dst) {
        conn_close(c, "out of memory");
        return;
    }
    if (n) memcpy(dst, p, n);
    frame_commit(c, id, type, n);
}

void send_json(struct conn *c, uint32_t id, uint8_t type, struct buf *json)
{
    send_frame(c, id, type, buf_data(json), json->len);
    buf_free(json);
}

static void send_error_v(struct conn *c, uint32_t id, const char *code, int err, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct buf b = { 0 };
    buf_putc(&b, '{');
    json_key(&b, "code");
    json_str(&b, code, strlen(code));
    json_key(&b, "message");
    json_str(&b, msg, strlen(msg));
    if (err) {
        json_key(&b, "errno");
        const char *en = errno_name(err);
        json_str(&b, en, strlen(en));
    }
    buf_putc(&b, '}');
    send_json(c, id, F_ERROR, &b);
}

void send_error(struct conn *c, uint32_t id, const char *code, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_error_v(c, id, code, err, fmt, ap);
    va_end(ap);
}

void send_errno(struct conn *c, uint32_t id, int err, const char *what, const char *path)
{
    send_error(c, id, errno_code(err), err, "%s %s: %s (%s)", what, path, strerror(err), errno_name(err));
}

/* Protocol violation: tell the peer on stream 0, then drop the connection. */
static void proto_error(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    char msg[256];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    logmsg("protocol error: %s", msg);
    send_error(c, 0, "PROTOCOL_ERROR", 0, "%s", msg);
    /* best effort: push the error out before closing */
    if (c->out.len) {
        ssize_t r = write(c->sock.fd, buf_data(&c->out), c->out.len);
        (void)r;
    }
    conn_close(c, msg);
}

/* ---- streams ---------------------------------------------------------------- */

static struct stream *stream_find(struct conn *c, uint32_t id)
{
    for (struct stream *s = c->streams; s; s = s->next)
        if (s->id == id) return s;
    return NULL;
}

static void runq_remove(struct stream *s)
{
    if (!s->queued) return;
    struct stream **pp = &runq_head, *prev = NULL;
    while (*pp && *pp != s) {
        prev = *pp;
        pp = &(*pp)->rnext;
    }
    if (*pp) {
        *pp = s->rnext;
        if (runq_tail == s) runq_tail = prev;
    }
    s->queued = 0;
    s->rnext = NULL;
}

void runq_add(struct stream *s)
{
    if (s->queued || s->dead) return;
    s->queued = 1;
    s->rnext = NULL;
    if (runq_tail) runq_tail->rnext = s;
    else runq_head = s;
    runq_tail = s;
}

int runq_run(void)
{
    struct stream *list = runq_head;
    runq_head = runq_tail = NULL;
    while (list) {
        struct stream *s = list;
        list = s->rnext;
        s->queued = 0;
        s->rnext = NULL;
        if (s->dead || s->c->dead) continue;
        if (s->op == OP_EXEC) exec_produce(s);
        else files_produce(s);
    }
    return runq_head != NULL;
}

void stream_end(struct stream *s)
{
    if (s->dead) return;
    struct conn *c = s->c;
    struct stream **pp = &c->streams;
    while (*pp && *pp != s) pp = &(*pp)->next;
    if (*pp) *pp = s->next;
    c->nstreams--;
    runq_remove(s);
    s->dead = 1;
    s->next = grave_streams;
    grave_streams = s;
}

/* The client may send n more data bytes on this stream. */
void stream_grant(struct stream *s, uint32_t n, int force)
{
    s->ungranted += n;
    if (!s->ungranted || (s->ungranted < GRANT_THRESHOLD && !force)) return;
    unsigned char w[4];
    put_be32(w, s->ungranted);
    send_frame(s->c, s->id, F_WINDOW, w, 4);
    s->recv_window += s->ungranted;
    s->ungranted = 0;
}

static void stream_free(struct stream *s)
{
    switch (s->op) {
    case OP_EXEC: buf_free(&s->u.ex.inbuf); break;
    case OP_WRITE:
        free(s->u.wr.tmp);
        free(s->u.wr.path);
        break;
    case OP_LIST:
        buf_free(&s->u.ls.pending);
        free(s->u.ls.path);
        break;
    case OP_WATCH: watch_free(s); break;
    case OP_CONNECT: tunnel_free(s); break;
    default: break;
    }
    free(s);
}

void reap_graveyard(void)
{
    while (grave_streams) {
        struct stream *s = grave_streams;
        grave_streams = s->next;
        stream_free(s);
    }
    while (grave_conns) {
        struct conn *c = grave_conns;
        grave_conns = c->next;
        buf_free(&c->in);
        buf_free(&c->out);
        free(c);
    }
}

/* ---- connection lifecycle --------------------------------------------------- */

/* The kernel's boot id (36 chars + newline), or "" when /proc is not there. */
static size_t read_boot_id(char *out, size_t n)
{
    out[0] = 0;
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t r = read(fd, out, n - 1);
    close(fd);
    if (r <= 0) r = 0;
    out[r] = 0;
    out[strcspn(out, "\r\n")] = 0;
    return strlen(out);
}

/* HELLO: the agent's first frame on every connection. On a virtio-serial port it tells the
 * host that the port is open, so bytes it sends from now on are not discarded. */
void conn_hello(struct conn *c)
{
    char boot_id[64];
    size_t bl = read_boot_id(boot_id, sizeof boot_id);
    struct buf b = { 0 };
    buf_putc(&b, '{');
    json_key(&b, "protocol");
    buf_printf(&b, "%d", PROTOCOL_VERSION);
    json_key(&b, "version");
    json_str(&b, AGENT_VERSION, strlen(AGENT_VERSION));
    json_key(&b, "pid");
    buf_printf(&b, "%d", (int)getpid());
    json_key(&b, "boot_id");
    json_str(&b, boot_id, bl);
    buf_putc(&b, '}');
    send_json(c, 0, F_HELLO, &b);
}

void conn_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            if (errno == EMFILE || errno == ENFILE) {
                logmsg("accept: %s; pausing the listener until a connection closes", strerror(errno));
                src_want(&g_listen, 0);
                g_listen_paused = 1;
            }
            return;
        }
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            return;
        }
        src_init(&c->sock, K_CONN, fd, c);
        c->next = g_conns;
        g_conns = c;
        src_want(&c->sock, EPOLLIN);
        conn_hello(c); /* written by the loop's conn_flush_all() */
    }
}

/* Connection gone: every exec it started is killed (process group, SIGKILL),
 * every unfinished write's temp file is removed. */
void conn_close(struct conn *c, const char *why)
{
    (void)why;
    if (c->dead) return;
    c->dead = 1;
    while (c->streams) {
        struct stream *s = c->streams;
        if (s->op == OP_EXEC) exec_teardown(s);
        else if (s->op == OP_WATCH) watch_teardown(s);
        else if (s->op == OP_CONNECT) tunnel_teardown(s);
        else files_teardown(s);
        stream_end(s);
    }
    src_close(&c->sock);
    struct conn **pp = &g_conns;
    while (*pp && *pp != c) pp = &(*pp)->next;
    if (*pp) *pp = c->next;
    c->next = grave_conns;
    grave_conns = c;
    if (g_listen_paused && g_listen.fd >= 0) {
        g_listen_paused = 0;
        src_want(&g_listen, EPOLLIN);
    }
}

/* Output drained below the high-water mark: wake producers that stopped. */
static void conn_kick(struct conn *c)
{
    c->throttled = 0;
    for (struct stream *s = c->streams; s; s = s->next) {
        if (s->op == OP_EXEC) exec_update(s);
        else if (s->op == OP_WATCH) watch_update(s);
        else if (s->op == OP_CONNECT) tunnel_update(s);
        else if ((s->op == OP_READ || s->op == OP_LIST) && s->credit > 0) runq_add(s);
    }
}

static void conn_update(struct conn *c)
{
    if (c->dead) return;
    uint32_t ev = 0;
    if (conn_can_send(c)) ev |= EPOLLIN; /* stop reading requests while output is backed up */
    if (c->out.len) ev |= EPOLLOUT;
    src_want(&c->sock, ev);
    if (c->throttled && conn_can_send(c)) conn_kick(c);
}

static void conn_flush(struct conn *c)
{
    while (c->out.len && !c->dead) {
        ssize_t r = write(c->sock.fd, buf_data(&c->out), c->out.len);
        if (r > 0) {
            buf_consume(&c->out, (size_t)r);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) break;
        conn_close(c, "write failed");
        return;
    }
    conn_update(c);
}

/* Frees the buffers of connections with nothing buffered; they are re-made on the next frame. */
void conn_release_idle_buffers(void)
{
    for (struct conn *c = g_conns; c; c = c->next) {
        if (c->dead) continue;
        if (c->in.len == 0) buf_free(&c->in);
        if (c->out.len == 0) buf_free(&c->out);
    }
}

void conn_flush_all(void)
{
    struct conn *c = g_conns;
    while (c) {
        struct conn *next = c->next; /* conn_flush may unlink c */
        conn_flush(c);
        c = next;
    }
}

/* ---- request dispatch ---------------------------------------------------------- */

static const struct {
    const char *name;
    int op;
} ops[] = {
    { "health", OP_HEALTH }, { "exec", OP_EXEC },   { "read", OP_READ },     { "write", OP_WRITE }, { "stat", OP_STAT },
    { "list", OP_LIST },     { "mkdir", OP_MKDIR }, { "remove", OP_REMOVE }, { "chmod", OP_CHMOD },
    { "identity", OP_IDENTITY }, { "watch", OP_WATCH }, { "connect", OP_CONNECT },
};

static long rss_bytes(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char tmp[128];
    ssize_t r = read(fd, tmp, sizeof tmp - 1);
    close(fd);
    if (r <= 0) return -1;
    tmp[r] = 0;
    long size, res;
    if (sscanf(tmp, "%ld %ld", &size, &res) != 2) return -1;
    return res * sysconf(_SC_PAGESIZE);
}

static void do_health(struct stream *s)
{
    struct buf b = { 0 };
    buf_putc(&b, '{');
    json_key(&b, "version");
    json_str(&b, AGENT_VERSION, strlen(AGENT_VERSION));
    json_key(&b, "protocol");
    buf_printf(&b, "%d", PROTOCOL_VERSION);
    json_key(&b, "uptime_ms");
    buf_printf(&b, "%lld", (long long)((now_ns() - g_start_ns) / 1000000));
    json_key(&b, "pid");
    buf_printf(&b, "%d", (int)getpid());
    long rss = rss_bytes();
    if (rss >= 0) {
        json_key(&b, "rss_bytes");
        buf_printf(&b, "%ld", rss);
    }
    buf_putc(&b, '}');
    send_json(s->c, s->id, F_RESULT, &b);
    stream_end(s);
}

static void on_open(struct conn *c, uint32_t id, const char *p, size_t n)
{
    if (id == 0) {
        proto_error(c, "OPEN on stream 0");
        return;
    }
    if (stream_find(c, id)) {
        proto_error(c, "OPEN on stream %u which is already open", id);
        return;
    }
    if (c->nstreams >= MAX_STREAMS_PER_CONN) {
        send_error(c, id, "TOO_MANY_STREAMS", 0, "more than %d open streams on this connection",
                   MAX_STREAMS_PER_CONN);
        return;
    }
    jv *req = json_parse(p, n);
    if (!req || req->t != JOBJ) {
        json_free(req);
        send_error(c, id, "INVALID_ARGUMENT", 0, "OPEN payload is not a JSON object");
        return;
    }
    jv *opv = jget(req, "op");
    int op = 0;
    if (opv && opv->t == JSTR)
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
            if (!strcmp(opv->s, ops[i].name)) op = ops[i].op;
    if (!op) {
        json_free(req);
        send_error(c, id, "UNSUPPORTED", 0, "unknown or missing \"op\"");
        return;
    }
    struct stream *s = calloc(1, sizeof *s);
    if (!s) {
        json_free(req);
        send_error(c, id, "IO_ERROR", ENOMEM, "out of memory");
        return;
    }
    s->id = id;
    s->op = op;
    s->c = c;
    s->credit = INITIAL_WINDOW;
    s->recv_window = INITIAL_WINDOW;
    s->next = c->streams;
    c->streams = s;
    c->nstreams++;
    switch (op) {
    case OP_HEALTH: do_health(s); break;
    case OP_EXEC: exec_open(s, req); break;
    case OP_IDENTITY: identity_open(s, req); break;
    case OP_WATCH: watch_open(s, req); break;
    case OP_CONNECT: tunnel_open(s, req); break;
    default: files_open(s, req); break;
    }
    json_free(req);
}

static void on_frame(struct conn *c, uint32_t id, uint8_t type, const char *p, size_t n)
{
    if (type == F_OPEN) {
        on_open(c, id, p, n);
        return;
    }
    if (type != F_DATA && type != F_EOF && type != F_WINDOW && type != F_CANCEL && type != F_SIGNAL &&
        type != F_RESIZE) {
        proto_error(c, "unexpected frame type %u from client", type);
        return;
    }
    struct stream *s = id ? stream_find(c, id) : NULL;
    if (!s) return; /* stream already finished: late frames are dropped */
    switch (type) {
    case F_DATA:
        if (n > s->recv_window) {
            proto_error(c, "stream %u: %zu data bytes exceed the window (%u)", id, n, s->recv_window);
            return;
        }
        s->recv_window -= (uint32_t)n;
        if (s->op == OP_EXEC) exec_data(s, p, n);
        else if (s->op == OP_WRITE) write_data(s, p, n);
        else if (s->op == OP_CONNECT) tunnel_data(s, p, n);
        else stream_grant(s, (uint32_t)n, 0); /* no consumer: discard */
        break;
    case F_EOF:
        if (s->op == OP_EXEC) exec_eof(s);
        else if (s->op == OP_WRITE) write_eof(s);
        else if (s->op == OP_CONNECT) tunnel_eof(s);
        break;
    case F_WINDOW: {
        if (n != 4) {
            proto_error(c, "WINDOW payload must be 4 bytes");
            return;
        }
        s->credit += be32((const unsigned char *)p);
        if (s->credit > (int64_t)1 << 31) {
            proto_error(c, "stream %u: window overflow", id);
            return;
        }
        if (s->op == OP_EXEC) exec_update(s);
        else if (s->op == OP_WATCH) watch_update(s);
        else if (s->op == OP_CONNECT) tunnel_update(s);
        else if (s->op == OP_READ || s->op == OP_LIST) runq_add(s);
        break;
    }
    case F_CANCEL:
        if (s->op == OP_EXEC) exec_cancel(s);
        else if (s->op == OP_WATCH) watch_cancel(s);
        else if (s->op == OP_CONNECT) tunnel_cancel(s);
        else files_cancel(s);
        break;
    case F_SIGNAL:
        if (s->op == OP_EXEC) {
            jv *req = json_parse(p, n);
            exec_signal(s, req);
            json_free(req);
        }
        break;
    case F_RESIZE:
        if (s->op == OP_EXEC) {
            jv *req = json_parse(p, n);
            exec_resize(s, req);
            json_free(req);
        }
        break;
    }
}

void conn_event(struct conn *c, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        size_t want = 64 * 1024;
        if (c->in.len >= HDR_SIZE) {
            size_t need = HDR_SIZE + be32((unsigned char *)buf_data(&c->in));
            if (need > c->in.len && need - c->in.len > want) want = need - c->in.len;
        }
        if (buf_reserve(&c->in, want)) {
            conn_close(c, "out of memory");
            return;
        }
        ssize_t r = read(c->sock.fd, buf_tail(&c->in), c->in.cap - c->in.off - c->in.len);
        if (r == 0) {
            conn_close(c, "peer closed");
            return;
        }
        if (r < 0) {
            if (errno != EAGAIN && errno != EINTR) conn_close(c, "read failed");
            return;
        }
        c->in.len += (size_t)r;
        while (!c->dead && c->in.len >= HDR_SIZE) {
            const unsigned char *h = (const unsigned char *)buf_data(&c->in);
            uint32_t plen = be32(h);
            if (plen > MAX_PAYLOAD) {
                proto_error(c, "frame of %u bytes exceeds the %u byte limit", plen, MAX_PAYLOAD);
                return;
            }
            if (c->in.len < HDR_SIZE + plen) break;
            on_frame(c, be32(h + 4), h[8], (const char *)h + HDR_SIZE, plen);
            if (c->dead) return;
            buf_consume(&c->in, HDR_SIZE + plen);
        }
    }
    if (!c->dead && (events & EPOLLOUT)) conn_flush(c);
    conn_update(c);
}
