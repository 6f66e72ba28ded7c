/* watch service: inotify on a directory (optionally its whole tree), streamed to the
 * client as NDJSON DATA frames (PROTOCOL.md §3.5).
 *
 * One inotify instance per stream, so flow control is per stream: without credit we stop
 * reading the instance and the kernel queue absorbs events until it overflows (reported
 * as an "overflow" event). Directories that appear later are added to the watch
 * (recursive) and what they already contain is reported as "create" events. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_WATCHES 8192              /* inotify watches (directories) per stream */
#define PENDING_MAX (1024u * 1024u)   /* formatted events waiting for credit */
#define EVENT_MASK                                                                                         \
    (IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | \
     IN_MOVE_SELF | IN_EXCL_UNLINK)

/* ---- wd -> path table (sorted by wd; wds of one instance mostly arrive ascending) ---- */

static size_t node_pos(const struct watch_st *w, int wd, int *found)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (w->nodes[mid].wd < wd) lo = mid + 1;
        else hi = mid;
    }
    *found = lo < w->n && w->nodes[lo].wd == wd;
    return lo;
}

static const char *node_path(const struct watch_st *w, int wd)
{
    int found;
    size_t i = node_pos(w, wd, &found);
    return found ? w->nodes[i].path : NULL;
}

static void node_remove_at(struct watch_st *w, size_t i)
{
    free(w->nodes[i].path);
    memmove(&w->nodes[i], &w->nodes[i + 1], (w->n - i - 1) * sizeof *w->nodes);
    w->n--;
}

static void node_remove(struct watch_st *w, int wd)
{
    int found;
    size_t i = node_pos(w, wd, &found);
    if (found) node_remove_at(w, i);
}

/* Adds an inotify watch for a directory. 0, EEXIST-like success for an already watched
 * inode (kept under its first path), E2BIG over the cap, or an errno. */
static int add_watch(struct watch_st *w, const char *path, uint32_t extra)
{
    if (w->n >= MAX_WATCHES) return E2BIG;
    int wd = inotify_add_watch(w->ino.fd, path, EVENT_MASK | IN_ONLYDIR | extra);
    if (wd < 0) return errno;
    int found;
    size_t i = node_pos(w, wd, &found);
    if (found) return 0; /* same directory reached twice (bind mount): keep the first path */
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->nodes = xrealloc(w->nodes, w->cap * sizeof *w->nodes);
    }
    memmove(&w->nodes[i + 1], &w->nodes[i], (w->n - i) * sizeof *w->nodes);
    w->nodes[i].wd = wd;
    w->nodes[i].path = xstrdup(path);
    w->n++;
    return 0;
}

/* ---- events ---------------------------------------------------------------------------- */

static void emit(struct watch_st *w, const char *type, const char *path, int is_dir)
{
    struct buf *b = &w->pending;
    size_t start = b->len;
    buf_puts(b, "{\"type\":\"");
    buf_puts(b, type);
    buf_puts(b, "\",\"path\":");
    json_str(b, path, strlen(path));
    buf_puts(b, is_dir ? ",\"is_dir\":true}\n" : ",\"is_dir\":false}\n");
    /* coalesce an event identical to the previous one still waiting to be sent */
    size_t len = b->len - start;
    if (start >= len && !memcmp(buf_data(b) + start - len, buf_data(b) + start, len) &&
        (start == len || buf_data(b)[start - len - 1] == '\n'))
        b->len = start;
}

static void join(char *out, size_t n, const char *dir, const char *name)
{
    snprintf(out, n, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name);
}

/* Watches dir and (recursively) every directory below it, breadth first. With report, the
 * entries found are emitted as "create" (a directory that appeared after the watch began:
 * what was put into it before its watch existed would be missed otherwise).
 * dir_watched: dir has its watch already. Returns 0, E2BIG when the cap was reached
 * anywhere (reported as an "overflow" event with report), or an errno for dir itself;
 * other errors below dir are skipped (e.g. a directory removed meanwhile). */
static int add_tree(struct watch_st *w, const char *dir, int report, int dir_watched)
{
    size_t qn = 0, qcap = 0, qi = 0;
    char **queue = NULL;
    int err = 0, top = 1;
    char *cur = xstrdup(dir);
    for (;;) {
        int e = top && dir_watched ? 0 : add_watch(w, cur, IN_DONT_FOLLOW);
        if (e && top) err = e;
        if (e == E2BIG) { /* the cap: this directory (and what is still queued) is not watched */
            if (report) emit(w, "overflow", cur, 1);
            err = E2BIG;
            free(cur);
            break;
        }
        top = 0;
        DIR *d = e ? NULL : opendir(cur);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            int is_dir = de->d_type == DT_DIR;
            if (de->d_type == DT_UNKNOWN) {
                struct stat st;
                is_dir = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
            }
            char full[PATH_MAX];
            join(full, sizeof full, cur, de->d_name);
            if (strlen(full) >= PATH_MAX - 1) continue;
            if (report) {
                if (w->pending.len < PENDING_MAX) emit(w, "create", full, is_dir);
                else if (report == 1) {
                    emit(w, "overflow", dir, 1);
                    report = 2; /* reported once; stop formatting */
                }
            }
            if (!is_dir) continue;
            if (qn == qcap) {
                qcap = qcap ? qcap * 2 : 16;
                queue = xrealloc(queue, qcap * sizeof *queue);
            }
            queue[qn++] = xstrdup(full);
        }
        if (d) closedir(d);
        free(cur);
        if (qi == qn) break;
        cur = queue[qi];
        queue[qi++] = NULL;
    }
    for (size_t i = qi; i < qn; i++) free(queue[i]);
    free(queue);
    return err;
}

/* Drops the watches of dir and everything below it (moved out of the tree). */
static void remove_tree(struct watch_st *w, const char *dir)
{
    size_t dl = strlen(dir);
    for (size_t i = 0; i < w->n;) {
        const char *p = w->nodes[i].path;
        if (!strncmp(p, dir, dl) && (p[dl] == 0 || p[dl] == '/')) {
            inotify_rm_watch(w->ino.fd, w->nodes[i].wd); /* its IN_IGNORED finds no node */
            node_remove_at(w, i);
        } else {
            i++;
        }
    }
}

static void handle(struct watch_st *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        emit(w, "overflow", w->root, 1);
        return;
    }
    const char *dir = node_path(w, ev->wd);
    if (!dir) return; /* a watch we dropped already */
    int is_root = ev->wd == w->root_wd;
    if (ev->mask & IN_IGNORED) { /* watch gone (directory deleted, filesystem unmounted) */
        if (is_root) w->ended = 1;
        node_remove(w, ev->wd);
        return;
    }
    int is_dir = (ev->mask & IN_ISDIR) != 0;
    if (!ev->len || !ev->name[0]) { /* an event on the watched directory itself */
        if (!is_root) return;       /* subdirectories: their parent reports them */
        if (ev->mask & IN_ATTRIB) emit(w, "chmod", dir, 1);
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
            emit(w, ev->mask & IN_MOVE_SELF ? "rename" : "remove", dir, 1);
            w->ended = 1;
        }
        return;
    }
    char full[PATH_MAX];
    join(full, sizeof full, dir, ev->name);
    if (ev->mask & IN_CREATE) emit(w, "create", full, is_dir);
    if (ev->mask & IN_MODIFY) emit(w, "write", full, is_dir);
    if (ev->mask & IN_ATTRIB) emit(w, "chmod", full, is_dir);
    if (ev->mask & IN_DELETE) emit(w, "remove", full, is_dir);
    if (ev->mask & (IN_MOVED_FROM | IN_MOVED_TO)) emit(w, "rename", full, is_dir);
    if (!w->recursive || !is_dir) return;
    if (ev->mask & IN_MOVED_FROM) remove_tree(w, full);
    if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
        int e = add_tree(w, full, 1, 0);
        if (e && e != E2BIG && e != ENOENT && e != ENOTDIR) logmsg("watch %s: %s", full, strerror(e));
    }
}

/* ---- stream ------------------------------------------------------------------------------ */

static void finish_result(struct stream *s)
{
    watch_teardown(s);
    send_frame(s->c, s->id, F_RESULT, "{}", 2);
    stream_end(s);
}

/* Sends pending lines (whole lines per frame) as far as credit allows. */
static void flush_pending(struct stream *s)
{
    struct watch_st *w = &s->u.wa;
    struct conn *c = s->c;
    while (w->pending.len && s->credit > 0) {
        if (!conn_can_send(c)) {
            c->throttled = 1;
            return;
        }
        size_t budget = s->credit < (int64_t)CHUNK_SIZE ? (size_t)s->credit : CHUNK_SIZE;
        const char *p = buf_data(&w->pending);
        size_t n = w->pending.len < budget ? w->pending.len : budget;
        if (n < w->pending.len) { /* cut after the last whole line */
            while (n && p[n - 1] != '\n') n--;
            if (!n) return; /* one line larger than the credit: wait for more */
        }
        send_frame(c, s->id, F_DATA, p, n);
        if (c->dead) return;
        s->credit -= (int64_t)n;
        buf_consume(&w->pending, n);
    }
}

void watch_update(struct stream *s)
{
    struct watch_st *w = &s->u.wa;
    if (s->dead) return;
    flush_pending(s);
    if (s->dead || s->c->dead) return;
    if (w->ended) {
        if (!w->pending.len) finish_result(s);
        else src_want(&w->ino, 0);
        return;
    }
    /* read more only once everything formatted went out and the socket has room */
    int want = !w->pending.len && s->credit > 0 && conn_can_send(s->c);
    if (!want && s->credit > 0 && !conn_can_send(s->c)) s->c->throttled = 1;
    src_want(&w->ino, want ? EPOLLIN : 0);
}

void watch_event(struct src *src)
{
    struct stream *s = src->owner;
    struct watch_st *w = &s->u.wa;
    if (s->dead) return;
    /* On the stack, not static: a 64 KiB .bss array sat between the data glibc writes at start,
     * spreading it over more pages in every agent; these pages go back after a quiet spell
     * (release_unused_stack in main.c). */
    char evbuf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t r;
    do r = read(w->ino.fd, evbuf, sizeof evbuf);
    while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EAGAIN) {
        int e = errno;
        watch_teardown(s);
        send_errno(s->c, s->id, e, "watch read", w->root ? w->root : "");
        stream_end(s);
        return;
    }
    for (ssize_t off = 0; r > 0 && off < r && !w->ended;) {
        const struct inotify_event *ev = (const struct inotify_event *)(evbuf + off);
        handle(w, ev);
        off += (ssize_t)(sizeof *ev + ev->len);
    }
    watch_update(s);
}

void watch_open(struct stream *s, jv *req)
{
    struct watch_st *w = &s->u.wa;
    src_init(&w->ino, K_WATCH, -1, s);
    w->root_wd = -1;
    jv *pv = jget(req, "path");
    if (!pv || pv->t != JSTR || !path_valid(pv->s, pv->slen)) {
        send_error(s->c, s->id, "INVALID_PATH", 0,
                   "\"path\" must be an absolute path without '..' components or NUL bytes");
        return stream_end(s);
    }
    jv *rv = jget(req, "recursive");
    if (rv && rv->t != JNULL && rv->t != JBOOL) {
        send_error(s->c, s->id, "INVALID_ARGUMENT", 0, "\"recursive\" must be a boolean");
        return stream_end(s);
    }
    w->recursive = rv && rv->t == JBOOL && rv->b;
    char root[PATH_MAX];
    size_t rl = pv->slen;
    while (rl > 1 && pv->s[rl - 1] == '/') rl--;
    memcpy(root, pv->s, rl);
    root[rl] = 0;
    struct stat st;
    if (stat(root, &st)) {
        send_errno(s->c, s->id, errno, "watch", root);
        return stream_end(s);
    }
    if (!S_ISDIR(st.st_mode)) {
        send_errno(s->c, s->id, ENOTDIR, "watch", root);
        return stream_end(s);
    }
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        send_error(s->c, s->id, "IO_ERROR", e, "inotify_init1: %s (%s)%s", strerror(e), errno_name(e),
                   e == EMFILE ? " (fs.inotify.max_user_instances)" : "");
        return stream_end(s);
    }
    w->ino.fd = fd;
    w->root = xstrdup(root);
    int e = add_watch(w, root, 0); /* the root itself may be reached through a symlink */
    if (!e) {
        w->root_wd = w->nodes[0].wd;
        if (w->recursive) e = add_tree(w, root, 0, 1);
    }
    if (e == E2BIG || e == ENOSPC) {
        watch_teardown(s);
        send_error(s->c, s->id, "TOO_MANY_ENTRIES", 0, "watch %s: more than %d directories%s", root,
                   e == E2BIG ? MAX_WATCHES : (int)w->n,
                   e == ENOSPC ? " (the kernel's fs.inotify.max_user_watches)" : "");
        return stream_end(s);
    }
    if (e) {
        watch_teardown(s);
        send_errno(s->c, s->id, e, "watch", root);
        return stream_end(s);
    }
    watch_update(s);
}

void watch_cancel(struct stream *s)
{
    watch_teardown(s);
    send_error(s->c, s->id, "CANCELLED", 0, "cancelled by the client");
    stream_end(s);
}

/* Closing the instance removes every watch. Memory is freed with the stream. */
void watch_teardown(struct stream *s)
{
    src_close(&s->u.wa.ino);
}

void watch_free(struct stream *s)
{
    struct watch_st *w = &s->u.wa;
    for (size_t i = 0; i < w->n; i++) free(w->nodes[i].path);
    free(w->nodes);
    free(w->root);
    buf_free(&w->pending);
}
