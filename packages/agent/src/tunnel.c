/* connect service: a byte tunnel to 127.0.0.1:PORT inside the bunker (PROTOCOL.md §3.6).
 *
 * The worker reaches a port in the bunker without anything listening in the bunker's
 * network namespace or on the host: the agent dials the port on loopback and relays bytes
 * both ways over the stream. Both directions are credit-controlled exactly like exec
 * stdin/stdout: without credit we stop reading the socket (the kernel's socket buffers and
 * TCP's own window then slow the server down), and client bytes we hold are bounded by the
 * window we granted. */
#include "agent.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void tunnel_release(struct stream *s)
{
    struct tunnel_st *t = &s->u.tu;
    src_close(&t->sock);
    if (t->counted) {
        t->counted = 0;
        s->c->ntunnels--;
    }
}

static void fail(struct stream *s, int err, const char *what)
{
    struct tunnel_st *t = &s->u.tu;
    tunnel_release(s);
    const char *code = err == ECONNREFUSED ? "PORT_NOT_LISTENING" : "IO_ERROR";
    send_error(s->c, s->id, code, err, "%s 127.0.0.1:%d: %s (%s)", what, t->port, strerror(err), errno_name(err));
    stream_end(s);
}

/* RESULT once the server closed its side (EOF sent to the client) and the client's EOF was
 * passed on (shutdown(SHUT_WR)): nothing can move any more. */
static void maybe_finish(struct stream *s)
{
    struct tunnel_st *t = &s->u.tu;
    if (s->dead || !t->connected || !t->rd_eof || !t->wr_done || t->inbuf.len) return;
    tunnel_release(s);
    struct buf b = { 0 };
    buf_printf(&b, "{\"bytes_in\":%llu,\"bytes_out\":%llu}", (unsigned long long)t->bytes_in,
               (unsigned long long)t->bytes_out);
    send_json(s->c, s->id, F_RESULT, &b);
    stream_end(s);
}

void tunnel_update(struct stream *s)
{
    struct tunnel_st *t = &s->u.tu;
    if (s->dead || t->sock.fd < 0) return;
    uint32_t ev = 0;
    if (!t->connected) {
        ev = EPOLLOUT; /* the non-blocking connect completes (or fails) as writability */
    } else {
        if (!t->rd_eof && s->credit > 0) {
            if (conn_can_send(s->c)) ev |= EPOLLIN;
            else s->c->throttled = 1;
        }
        if (t->inbuf.len) ev |= EPOLLOUT;
    }
    src_want(&t->sock, ev);
}

static void shut_wr(struct stream *s)
{
    struct tunnel_st *t = &s->u.tu;
    if (t->wr_done || !t->client_eof || t->inbuf.len || !t->connected) return;
    t->wr_done = 1;
    if (shutdown(t->sock.fd, SHUT_WR) && errno != ENOTCONN) {
        fail(s, errno, "shutdown");
        return;
    }
    maybe_finish(s);
}

/* Client bytes held while the socket was full (or not yet connected) go out first. */
static void flush_in(struct stream *s)
{
    struct tunnel_st *t = &s->u.tu;
    while (t->inbuf.len) {
        ssize_t r = send(t->sock.fd, buf_data(&t->inbuf), t->inbuf.len, MSG_NOSIGNAL);
        if (r > 0) {
            buf_consume(&t->inbuf, (size_t)r);
            t->bytes_in += (uint64_t)r;
            stream_grant(s, (uint32_t)r, t->inbuf.len == 0);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return;
        fail(s, errno, "send to"); /* EPIPE, ECONNRESET: the server is gone, like a TCP client would see */
        return;
    }
    shut_wr(s);
}

static void read_out(struct stream *s)
{
    struct tunnel_st *t = &s->u.tu;
    struct conn *c = s->c;
    if (t->rd_eof || s->credit <= 0 || !conn_can_send(c)) return;
    size_t n = s->credit < (int64_t)CHUNK_SIZE ? (size_t)s->credit : CHUNK_SIZE;
    char *p = frame_begin(c, n); /* read straight into the outgoing frame: no copy, no buffer */
    if (!p) {
        conn_close(c, "out of memory");
        return;
    }
    ssize_t r;
    do r = recv(t->sock.fd, p, n, 0);
    while (r < 0 && errno == EINTR);
    if (r > 0) {
        frame_commit(c, s->id, F_DATA, (size_t)r);
        s->credit -= r;
        t->bytes_out += (uint64_t)r;
        return;
    }
    if (r == 0) {
        t->rd_eof = 1;
        send_frame(c, s->id, F_EOF, NULL, 0); /* the server's end of data, after all of it */
        maybe_finish(s);
        return;
    }
    if (errno != EAGAIN) fail(s, errno, "recv from");
}

static void on_connected(struct stream *s)
{
    struct tunnel_st *t = &s->u.tu;
    t->connected = 1;
    int one = 1; /* a relay of already-chunked data: Nagle would only add latency */
    setsockopt(t->sock.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    send_frame(s->c, s->id, F_STARTED, "{}", 2);
    flush_in(s); /* DATA the client sent before STARTED */
}

void tunnel_event(struct src *src, uint32_t events)
{
    struct stream *s = src->owner;
    struct tunnel_st *t = &s->u.tu;
    if (s->dead) return;
    if (!t->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(src->fd, SOL_SOCKET, SO_ERROR, &err, &len)) err = errno;
        if (err) {
            fail(s, err, "connect");
            return;
        }
        if (!(events & EPOLLOUT)) return;
        on_connected(s);
    } else {
        if (t->inbuf.len && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) flush_in(s);
        if (s->dead) return;
        if ((src->events & EPOLLIN) && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) read_out(s);
    }
    if (!s->dead) tunnel_update(s);
}

void tunnel_data(struct stream *s, const char *p, size_t n)
{
    struct tunnel_st *t = &s->u.tu;
    if (t->client_eof || t->wr_done) {
        stream_grant(s, (uint32_t)n, 0); /* after EOF nothing is written: drop, keep credit flowing */
        return;
    }
    if (t->connected && !t->inbuf.len) { /* fast path: straight into the socket */
        while (n) {
            ssize_t r = send(t->sock.fd, p, n, MSG_NOSIGNAL);
            if (r > 0) {
                p += r;
                n -= (size_t)r;
                t->bytes_in += (uint64_t)r;
                stream_grant(s, (uint32_t)r, n == 0);
                continue;
            }
            if (r < 0 && errno == EINTR) continue;
            if (r < 0 && errno == EAGAIN) break;
            fail(s, errno, "send to");
            return;
        }
    }
    /* at most the window we granted (256 KiB): the client may not send more */
    if (n && buf_append(&t->inbuf, p, n)) {
        conn_close(s->c, "out of memory");
        return;
    }
    tunnel_update(s);
}

void tunnel_eof(struct stream *s)
{
    s->u.tu.client_eof = 1;
    shut_wr(s);
    if (!s->dead) tunnel_update(s);
}

void tunnel_cancel(struct stream *s)
{
    tunnel_release(s);
    send_error(s->c, s->id, "CANCELLED", 0, "cancelled by the client");
    stream_end(s);
}

void tunnel_teardown(struct stream *s) { tunnel_release(s); }

void tunnel_free(struct stream *s) { buf_free(&s->u.tu.inbuf); }

void tunnel_open(struct stream *s, jv *req)
{
    struct tunnel_st *t = &s->u.tu;
    struct conn *c = s->c;
    src_init(&t->sock, K_TUNNEL, -1, s);
    jv *pv = jget(req, "port");
    if (!pv || pv->t != JNUM || !(pv->num >= 1 && pv->num <= 65535) || pv->num != (double)(int)pv->num) {
        send_error(c, s->id, "INVALID_ARGUMENT", 0, "\"port\" must be an integer 1..65535");
        return stream_end(s);
    }
    t->port = (int)pv->num;
    /* every tunnel holds a socket: a client must not be able to use up the agent's fds */
    if (c->ntunnels >= MAX_TUNNELS_PER_CONN) {
        send_error(c, s->id, "TOO_MANY_STREAMS", 0, "more than %d tunnels on this connection",
                   MAX_TUNNELS_PER_CONN);
        return stream_end(s);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(s, errno, "socket for");
    t->sock.fd = fd;
    c->ntunnels++;
    t->counted = 1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)t->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r;
    do r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    while (r < 0 && errno == EINTR);
    if (r == 0) on_connected(s);
    else if (errno != EINPROGRESS) return fail(s, errno, "connect");
    if (!s->dead) tunnel_update(s);
}
