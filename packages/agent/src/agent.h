/* scaibunker-agent: shared declarations.
 *
 * One process, one thread, one epoll loop. See PROTOCOL.md for the wire format.
 */
#ifndef SCAIBUNKER_AGENT_H
#define SCAIBUNKER_AGENT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "json.h"

#define AGENT_VERSION "0.1.0"
#define PROTOCOL_VERSION 1

#define HDR_SIZE 9u                    /* u32 length, u32 stream, u8 type */
#define MAX_PAYLOAD (1024u * 1024u)    /* larger frames are a protocol error */
#define INITIAL_WINDOW (256u * 1024u)  /* per stream, per direction */
#define CHUNK_SIZE (64u * 1024u)       /* data frames the agent produces */
#define GRANT_THRESHOLD (64u * 1024u)  /* coalesce WINDOW frames we send */
#define OUT_HIGH (1024u * 1024u)       /* per-connection output high-water mark */
#define MAX_STREAMS_PER_CONN 1024
#define MAX_LIST_ENTRIES 10000
#define MAX_TUNNELS_PER_CONN 256     /* connect streams (each holds a socket) */

enum frame_type {
    F_OPEN = 1,
    F_DATA = 2,
    F_STDOUT = 3,
    F_STDERR = 4,
    F_EOF = 5,      /* client -> agent: end of DATA; agent -> client (connect): the server closed its side */
    F_WINDOW = 6,
    F_RESULT = 7,
    F_ERROR = 8,
    F_CANCEL = 9,
    F_SIGNAL = 10,
    F_HELLO = 11, /* agent -> client, stream 0, first frame of every connection */
    F_STARTED = 12, /* agent -> client: exec forked, JSON {"pid": N}; connect: connected, {} */
    F_RESIZE = 13,  /* client -> agent: pty exec window size, JSON {"cols": C, "rows": R} */
};

/* ---- byte buffer (util.c) ---------------------------------------------- */
struct buf {
    char *p;
    size_t off, len, cap; /* live bytes are p[off .. off+len) */
};
int buf_reserve(struct buf *b, size_t n); /* make n bytes writable at buf_tail */
static inline char *buf_data(const struct buf *b) { return b->p + b->off; }
static inline char *buf_tail(const struct buf *b) { return b->p + b->off + b->len; }
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);
int buf_append(struct buf *b, const void *d, size_t n);
int buf_putc(struct buf *b, char ch);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- misc utilities (util.c) ------------------------------------------- */
int64_t now_ns(void); /* CLOCK_MONOTONIC */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
const char *errno_name(int e);
const char *errno_code(int e); /* stable error code for an errno */
const char *signal_name(int sig, char *scratch, size_t n);
int signal_from_name(const char *s);
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void json_str(struct buf *b, const char *s, size_t n); /* quoted, escaped */
void json_key(struct buf *b, const char *key);         /* ,"key": (comma unless first) */
int set_nonblock(int fd);
void kill_session(pid_t sid); /* SIGKILL every process of session `sid` (scans /proc) */

/* ---- event sources ------------------------------------------------------ */
enum src_kind { K_LISTEN = 1, K_SIGNAL, K_CONN, K_EXEC_OUT, K_EXEC_ERR, K_EXEC_IN, K_SERIAL, K_WATCH, K_TUNNEL };
struct src {
    int kind;
    int fd;
    uint32_t events; /* currently registered interest, 0 = not in epoll */
    void *owner;
};
void src_init(struct src *s, int kind, int fd, void *owner);
void src_want(struct src *s, uint32_t events);
void src_close(struct src *s);

/* ---- streams ------------------------------------------------------------ */
enum op {
    OP_HEALTH = 1,
    OP_EXEC,
    OP_READ,
    OP_WRITE,
    OP_STAT,
    OP_LIST,
    OP_MKDIR,
    OP_REMOVE,
    OP_CHMOD,
    OP_IDENTITY,
    OP_WATCH,
    OP_CONNECT,
};

struct exec_st {
    pid_t pid;
    int64_t start_ns, end_ns, deadline_ns; /* deadline 0 = none */
    int exited, status;
    int timed_out, killed; /* killed: the group got SIGKILL from us */
    struct src out, err, in;
    struct buf inbuf;   /* stdin bytes received but not yet written to the pipe */
    int stdin_eof;      /* client sent EOF */
    int stdin_broken;   /* pipe closed (EPIPE) or never wanted: discard input */
    /* pty exec (pty.c): out = master (read side), in = a dup of it (write side),
     * ptm = the master kept for ioctls until the stream ends; err unused. */
    int pty;
    int ptm;
    int veof_pending;   /* client EOF: write the VEOF character once inbuf is empty */
    uint64_t drained;   /* bytes read from the master after the leader was reaped */
};

struct read_st {
    int fd;
    uint64_t bytes;
};

struct write_st {
    int fd;
    char *tmp, *path;
    uint64_t bytes;
};

struct list_st {
    DIR *dir;
    char *path;
    struct buf pending; /* one formatted NDJSON line not yet sent */
    uint64_t count;
    int done;
};

struct watch_node {
    int wd;
    char *path;
};

struct watch_st {
    struct src ino;           /* the inotify instance (K_WATCH) */
    char *root;
    int root_wd;
    int recursive;
    struct watch_node *nodes; /* sorted by wd */
    size_t n, cap;
    struct buf pending;       /* formatted NDJSON lines not yet sent */
    int ended;                /* root gone: RESULT once pending is sent */
};

struct tunnel_st {
    struct src sock;  /* TCP socket to 127.0.0.1:port (K_TUNNEL) */
    int port;
    int counted;      /* counted in conn->ntunnels */
    struct buf inbuf; /* client bytes not yet written to the socket (<= the granted window) */
    int connected;    /* connect() completed, STARTED sent */
    int client_eof;   /* the client sent EOF: shutdown(SHUT_WR) once inbuf is written */
    int wr_done;      /* SHUT_WR done */
    int rd_eof;       /* the server closed its side: EOF frame sent */
    uint64_t bytes_in, bytes_out; /* client -> server, server -> client */
};

struct conn;
struct stream {
    uint32_t id;
    int op;
    int dead;
    struct conn *c;
    struct stream *next;  /* in conn->streams */
    struct stream *rnext; /* in the run queue (read/list producers) */
    int queued;
    int64_t credit;       /* data bytes we may still send to the client */
    uint32_t ungranted;   /* client data bytes consumed but not yet re-granted */
    uint32_t recv_window; /* client data bytes the client may still send */
    union {
        struct exec_st ex;
        struct read_st rd;
        struct write_st wr;
        struct list_st ls;
        struct watch_st wa;
        struct tunnel_st tu;
    } u;
};

struct conn {
    struct src sock;
    struct buf in, out;
    struct stream *streams;
    int nstreams;
    int ntunnels; /* open connect streams */
    int dead;
    int throttled; /* a producer stopped because out.len >= OUT_HIGH */
    struct conn *next;
};

/* conn.c */
extern struct conn *g_conns;
extern int g_epfd;
extern int64_t g_start_ns;
void conn_accept(int lfd);
void conn_hello(struct conn *c); /* queue the HELLO frame (first frame of a new connection) */
void conn_event(struct conn *c, uint32_t events);
void conn_flush_all(void);
void conn_release_idle_buffers(void); /* after a quiet spell: see IDLE_TRIM_MS in main.c */
void conn_close(struct conn *c, const char *why);
void reap_graveyard(void);
char *frame_begin(struct conn *c, size_t max_payload); /* NULL on OOM */
void frame_commit(struct conn *c, uint32_t id, uint8_t type, size_t payload_len);
void send_frame(struct conn *c, uint32_t id, uint8_t type, const void *p, size_t n);
void send_json(struct conn *c, uint32_t id, uint8_t type, struct buf *json);
void send_error(struct conn *c, uint32_t id, const char *code, int err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void send_errno(struct conn *c, uint32_t id, int err, const char *what, const char *path);
void stream_end(struct stream *s); /* after the terminal frame was sent */
void stream_grant(struct stream *s, uint32_t n, int force);
void runq_add(struct stream *s);
int runq_run(void); /* returns 1 if anything is still runnable */
static inline int conn_can_send(struct conn *c) { return c->out.len < OUT_HIGH; }

/* exec.c */
void exec_open(struct stream *s, jv *req);
void exec_event(struct src *src, uint32_t events);
void exec_data(struct stream *s, const char *p, size_t n);
void exec_eof(struct stream *s);
void exec_cancel(struct stream *s);
void exec_signal(struct stream *s, jv *req);
void exec_update(struct stream *s);
void exec_teardown(struct stream *s); /* connection closed */
void exec_reap_all(void);             /* SIGCHLD */
int64_t exec_check_timeouts(int64_t now); /* returns next deadline or 0 */
void exec_kill_all(int sig);
void exec_produce(struct stream *s); /* run queue: pty drain after the leader exited */
void exec_resize(struct stream *s, jv *req);

/* pty.c */
struct exec_pty {
    int ptm, pts;  /* master (non-blocking, cloexec), slave (cloexec) */
    int rd, wr;    /* dups of the master: read side, write side */
};
int pty_parse(jv *req, int *cols, int *rows); /* 0 absent, 1 present+valid, -1 invalid */
int pty_open(struct exec_pty *p, int cols, int rows, uid_t owner, int chown_slave); /* 0 or errno */
void pty_close(struct exec_pty *p);
int pty_set_size(int ptm, int cols, int rows); /* 0 or errno */
char pty_veof(int ptm);
pid_t pty_foreground(int ptm); /* foreground process group of the terminal, or -1 */

/* watch.c */
void watch_open(struct stream *s, jv *req);
void watch_event(struct src *src);
void watch_update(struct stream *s); /* credit or socket space changed */
void watch_cancel(struct stream *s);
void watch_teardown(struct stream *s);
void watch_free(struct stream *s);

/* tunnel.c */
void tunnel_open(struct stream *s, jv *req); /* connect */
void tunnel_event(struct src *src, uint32_t events);
void tunnel_update(struct stream *s); /* credit or socket space changed */
void tunnel_data(struct stream *s, const char *p, size_t n);
void tunnel_eof(struct stream *s);
void tunnel_cancel(struct stream *s);
void tunnel_teardown(struct stream *s);
void tunnel_free(struct stream *s);

/* files.c */
void files_open(struct stream *s, jv *req); /* stat, list, read, write, mkdir, remove, chmod */
void files_produce(struct stream *s);       /* read/list: produce one frame */
void write_data(struct stream *s, const char *p, size_t n);
void write_eof(struct stream *s);
void files_cancel(struct stream *s);
void files_teardown(struct stream *s);
int path_valid(const char *p, size_t n);
int mkdir_parents(const char *path, mode_t mode); /* 0 or errno */

/* identity.c */
void identity_open(struct stream *s, jv *req); /* hostname, machine-id, entropy, clock */

/* serial.c: --serial PORT, the channel is a virtio-serial port (one connection) */
int serial_start(const char *spec); /* device path or port name; -1: retrying */
void serial_event(uint32_t events); /* K_SERIAL: the port while no host is attached */
void serial_tick(void);             /* before reap_graveyard(): reopen after a disconnect */
int64_t serial_deadline(void);      /* pending reopen retry (ns, CLOCK_MONOTONIC) or 0 */
/* end serial.c */

/* users.c */
#define MAX_GROUPS 64
struct userinfo {
    uid_t uid;
    gid_t gid;
    char name[256];
    char home[1024];
    gid_t groups[MAX_GROUPS];
    int ngroups;
};
/* spec: "name", "uid", "name:group", "uid:gid"; NULL = the agent's own uid.
 * Returns 0, or -1 with msg filled in. */
int resolve_user(const char *spec, struct userinfo *u, char *msg, size_t msglen);

#endif
