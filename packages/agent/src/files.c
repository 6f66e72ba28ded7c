/* files service: read (streamed), write (streamed, atomic), stat, list (streamed),
 * mkdir, remove, chmod. Disk I/O is done synchronously in the event loop; reads
 * and listings are chunked (one frame per turn) so other streams keep moving. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int path_valid(const char *p, size_t n)
{
    if (n == 0 || n >= PATH_MAX || p[0] != '/' || memchr(p, 0, n)) return 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && p[i] == '/') i++;
        size_t j = i;
        while (j < n && p[j] != '/') j++;
        if (j - i == 2 && p[i] == '.' && p[i + 1] == '.') return 0;
        i = j;
    }
    return 1;
}

/* Copies path without trailing slashes ("/" stays "/"). */
static void strip_trailing(char *dst, const char *src)
{
    size_t n = strlen(src);
    while (n > 1 && src[n - 1] == '/') n--;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static const char *base_name(const char *p) /* p has no trailing slash */
{
    if (!strcmp(p, "/")) return p;
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int mkdir_parents(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (strlen(path) >= sizeof tmp) return ENAMETOOLONG;
    strip_trailing(tmp, path);
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char save = *p;
        *p = 0;
        if (mkdir(tmp, mode) != 0) {
            int e = errno;
            struct stat st;
            if (stat(tmp, &st) == 0) {
                if (!S_ISDIR(st.st_mode)) return save ? ENOTDIR : EEXIST;
            } else {
                return e;
            }
        }
        *p = save;
        if (!save) break;
    }
    return 0;
}

static const char *type_name(mode_t m)
{
    if (S_ISREG(m)) return "file";
    if (S_ISDIR(m)) return "dir";
    if (S_ISLNK(m)) return "symlink";
    return "other";
}

static void stat_json(struct buf *b, const char *path, const char *name, const struct stat *st, const char *link,
                      ssize_t linklen)
{
    buf_putc(b, '{');
    json_key(b, "path");
    json_str(b, path, strlen(path));
    json_key(b, "name");
    json_str(b, name, strlen(name));
    json_key(b, "type");
    buf_printf(b, "\"%s\"", type_name(st->st_mode));
    json_key(b, "size");
    buf_printf(b, "%lld", (long long)st->st_size);
    json_key(b, "mode");
    buf_printf(b, "%u", (unsigned)(st->st_mode & 07777));
    json_key(b, "mtime_ms");
    buf_printf(b, "%lld", (long long)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000);
    if (link && linklen >= 0) {
        json_key(b, "link_target");
        json_str(b, link, (size_t)linklen);
    }
    buf_putc(b, '}');
}

static void result_empty(struct stream *s)
{
    send_frame(s->c, s->id, F_RESULT, "{}", 2);
    stream_end(s);
}

static void fail_errno(struct stream *s, int err, const char *what, const char *path)
{
    send_errno(s->c, s->id, err, what, path);
    stream_end(s);
}

static int get_mode(jv *req, const char *key, int *mode)
{
    jv *m = jget(req, key);
    if (!m || m->t == JNULL) return 0;
    if (m->t != JNUM || m->num < 0 || m->num > 07777 || m->num != (double)(int)m->num) return -1;
    *mode = (int)m->num;
    return 1;
}

static int get_bool(jv *req, const char *key)
{
    jv *v = jget(req, key);
    return v && v->t == JBOOL && v->b;
}

/* ---- stat / mkdir / remove / chmod --------------------------------------------- */

static void do_stat(struct stream *s, const char *path)
{
    struct stat st;
    if (lstat(path, &st)) return fail_errno(s, errno, "stat", path);
    char link[PATH_MAX];
    ssize_t ll = -1;
    if (S_ISLNK(st.st_mode)) ll = readlink(path, link, sizeof link);
    struct buf b = { 0 };
    stat_json(&b, path, base_name(path), &st, S_ISLNK(st.st_mode) ? link : NULL, ll);
    send_json(s->c, s->id, F_RESULT, &b);
    stream_end(s);
}

static void do_mkdir(struct stream *s, const char *path, jv *req)
{
    int mode = 0755;
    if (get_mode(req, "mode", &mode) < 0) {
        send_error(s->c, s->id, "INVALID_ARGUMENT", 0, "\"mode\" must be an integer 0..0o7777");
        return stream_end(s);
    }
    if (get_bool(req, "parents")) {
        int e = mkdir_parents(path, (mode_t)mode);
        if (e) return fail_errno(s, e, "mkdir", path);
    } else if (mkdir(path, (mode_t)mode)) {
        return fail_errno(s, errno, "mkdir", path);
    }
    result_empty(s);
}

static int rm_tree(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return e;
    }
    int err = 0;
    struct dirent *de;
    while (!err && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        int isdir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            isdir = fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        }
        if (isdir) err = rm_tree(fd, de->d_name);
        else if (unlinkat(fd, de->d_name, 0) && errno != ENOENT) err = errno;
    }
    closedir(d);
    if (!err && unlinkat(dfd, name, AT_REMOVEDIR) && errno != ENOENT) err = errno;
    return err;
}

static void do_remove(struct stream *s, const char *path, jv *req)
{
    char p[PATH_MAX];
    strip_trailing(p, path);
    if (!strcmp(p, "/")) {
        send_error(s->c, s->id, "INVALID_PATH", 0, "refusing to remove /");
        return stream_end(s);
    }
    struct stat st;
    if (lstat(p, &st)) return fail_errno(s, errno, "remove", p);
    if (S_ISDIR(st.st_mode)) {
        if (get_bool(req, "recursive")) {
            int e = rm_tree(AT_FDCWD, p);
            if (e) return fail_errno(s, e, "remove", p);
        } else if (rmdir(p)) {
            int e = errno == EEXIST ? ENOTEMPTY : errno;
            return fail_errno(s, e, "remove", p);
        }
    } else if (unlink(p)) {
        return fail_errno(s, errno, "remove", p);
    }
    result_empty(s);
}

static void do_chmod(struct stream *s, const char *path, jv *req)
{
    int mode;
    if (get_mode(req, "mode", &mode) != 1) {
        send_error(s->c, s->id, "INVALID_ARGUMENT", 0, "\"mode\" must be an integer 0..0o7777");
        return stream_end(s);
    }
    if (chmod(path, (mode_t)mode)) return fail_errno(s, errno, "chmod", path);
    result_empty(s);
}

/* ---- read --------------------------------------------------------------------------- */

static void open_read(struct stream *s, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return fail_errno(s, errno, "open", path);
    struct stat st;
    if (fstat(fd, &st)) {
        int e = errno;
        close(fd);
        return fail_errno(s, e, "stat", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        if (S_ISDIR(st.st_mode)) return fail_errno(s, EISDIR, "read", path);
        send_error(s->c, s->id, "INVALID_ARGUMENT", 0, "read %s: not a regular file", path);
        return stream_end(s);
    }
    s->u.rd.fd = fd;
    runq_add(s);
}

static void produce_read(struct stream *s)
{
    struct conn *c = s->c;
    struct read_st *rd = &s->u.rd;
    if (s->credit <= 0) return; /* a WINDOW frame re-queues us */
    if (!conn_can_send(c)) {
        c->throttled = 1; /* re-queued when the socket drains */
        return;
    }
    size_t n = s->credit < (int64_t)CHUNK_SIZE ? (size_t)s->credit : CHUNK_SIZE;
    char *p = frame_begin(c, n);
    if (!p) return conn_close(c, "out of memory");
    ssize_t r;
    do r = read(rd->fd, p, n);
    while (r < 0 && errno == EINTR);
    if (r > 0) {
        frame_commit(c, s->id, F_DATA, (size_t)r);
        s->credit -= r;
        rd->bytes += (uint64_t)r;
        runq_add(s);
        return;
    }
    int e = errno;
    close(rd->fd);
    rd->fd = -1;
    if (r < 0) return fail_errno(s, e, "read", "file");
    struct buf b = { 0 };
    buf_printf(&b, "{\"bytes\":%llu}", (unsigned long long)rd->bytes);
    send_json(c, s->id, F_RESULT, &b);
    stream_end(s);
}

/* ---- list ---------------------------------------------------------------------------- */

static void open_list(struct stream *s, const char *path)
{
    char p[PATH_MAX];
    strip_trailing(p, path);
    int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail_errno(s, errno, "list", p);
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return fail_errno(s, e, "list", p);
    }
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    if (n > MAX_LIST_ENTRIES) {
        closedir(d);
        send_error(s->c, s->id, "TOO_MANY_ENTRIES", 0, "list %s: more than %d entries (%zu)", p,
                   MAX_LIST_ENTRIES, n);
        return stream_end(s);
    }
    rewinddir(d);
    s->u.ls.dir = d;
    s->u.ls.path = xstrdup(p);
    runq_add(s);
}

/* Formats the next entry into ls->pending; sets done at the end. */
static void list_next(struct list_st *ls)
{
    struct dirent *de;
    while ((de = readdir(ls->dir))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        struct stat st;
        if (fstatat(dirfd(ls->dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW)) continue; /* raced away */
        char link[PATH_MAX];
        ssize_t ll = -1;
        if (S_ISLNK(st.st_mode)) ll = readlinkat(dirfd(ls->dir), de->d_name, link, sizeof link);
        char full[PATH_MAX * 2];
        snprintf(full, sizeof full, "%s%s%s", ls->path, strcmp(ls->path, "/") ? "/" : "", de->d_name);
        stat_json(&ls->pending, full, de->d_name, &st, S_ISLNK(st.st_mode) ? link : NULL, ll);
        buf_putc(&ls->pending, '\n');
        ls->count++;
        return;
    }
    ls->done = 1;
}

static void produce_list(struct stream *s)
{
    struct conn *c = s->c;
    struct list_st *ls = &s->u.ls;
    if (s->credit <= 0) return;
    if (!conn_can_send(c)) {
        c->throttled = 1;
        return;
    }
    size_t budget = s->credit < (int64_t)(2 * CHUNK_SIZE) ? (size_t)s->credit : 2 * CHUNK_SIZE;
    char *frame = frame_begin(c, budget);
    if (!frame) return conn_close(c, "out of memory");
    size_t flen = 0;
    while (flen < CHUNK_SIZE) {
        if (!ls->pending.len) {
            if (ls->done) break;
            list_next(ls);
            if (ls->done) break;
        }
        if (flen + ls->pending.len > budget) break; /* wait for more credit */
        memcpy(frame + flen, buf_data(&ls->pending), ls->pending.len);
        flen += ls->pending.len;
        buf_consume(&ls->pending, ls->pending.len);
    }
    if (flen) {
        frame_commit(c, s->id, F_DATA, flen);
        s->credit -= (int64_t)flen;
    }
    if (ls->done && !ls->pending.len) {
        closedir(ls->dir);
        ls->dir = NULL;
        struct buf b = { 0 };
        buf_printf(&b, "{\"count\":%llu}", (unsigned long long)ls->count);
        send_json(c, s->id, F_RESULT, &b);
        return stream_end(s);
    }
    if (flen) runq_add(s);
}

void files_produce(struct stream *s)
{
    if (s->op == OP_READ) produce_read(s);
    else if (s->op == OP_LIST) produce_list(s);
}

/* ---- write ---------------------------------------------------------------------------- */

static void open_write(struct stream *s, const char *path, jv *req)
{
    struct write_st *wr = &s->u.wr;
    wr->fd = -1;
    size_t pl = strlen(path);
    if (path[pl - 1] == '/') {
        send_error(s->c, s->id, "INVALID_PATH", 0, "write %s: path ends with '/'", path);
        return stream_end(s);
    }
    int mode = -1;
    if (get_mode(req, "mode", &mode) < 0) {
        send_error(s->c, s->id, "INVALID_ARGUMENT", 0, "\"mode\" must be an integer 0..0o7777");
        return stream_end(s);
    }
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    size_t dl = (size_t)(slash - path);
    memcpy(dir, path, dl);
    dir[dl] = 0;
    if (dl == 0) strcpy(dir, "/");
    if (get_bool(req, "mkdir_parents")) {
        int e = mkdir_parents(dir, 0755);
        if (e) return fail_errno(s, e, "mkdir", dir);
    }
    struct stat st;
    int exists = lstat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) return fail_errno(s, EISDIR, "write", path);
    int keep_owner = exists && S_ISREG(st.st_mode);
    if (mode < 0) mode = keep_owner ? (int)(st.st_mode & 07777) : 0644;

    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        uint64_t x = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)s;
        memcpy(rnd, &x, sizeof rnd);
    }
    char tmp[PATH_MAX + 64];
    int n = snprintf(tmp, sizeof tmp, "%s%s.sb-write-", dl ? dir : "", "/");
    for (size_t i = 0; i < sizeof rnd; i++) n += snprintf(tmp + n, sizeof tmp - (size_t)n, "%02x", rnd[i]);
    snprintf(tmp + n, sizeof tmp - (size_t)n, ".tmp");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        int e = errno;
        return fail_errno(s, e, "write", e == ENOENT || e == ENOTDIR ? dir : path);
    }
    if (fchmod(fd, (mode_t)mode)) { /* ignore: best effort, e.g. odd filesystems */
    }
    if (keep_owner && (st.st_uid != geteuid() || st.st_gid != getegid())) {
        if (fchown(fd, st.st_uid, st.st_gid)) { /* ignore: not root */
        }
    }
    wr->fd = fd;
    wr->tmp = xstrdup(tmp);
    wr->path = xstrdup(path);
}

static void write_abort(struct stream *s, int err, const char *what)
{
    struct write_st *wr = &s->u.wr;
    if (wr->fd >= 0) close(wr->fd);
    wr->fd = -1;
    if (wr->tmp) unlink(wr->tmp);
    if (err) fail_errno(s, err, what, wr->path);
}

void write_data(struct stream *s, const char *p, size_t n)
{
    struct write_st *wr = &s->u.wr;
    size_t total = n;
    while (n) {
        ssize_t r = write(wr->fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return write_abort(s, errno, "write");
        p += r;
        n -= (size_t)r;
    }
    wr->bytes += total;
    stream_grant(s, (uint32_t)total, 0);
}

void write_eof(struct stream *s)
{
    struct write_st *wr = &s->u.wr;
    int fd = wr->fd;
    wr->fd = -1;
    if (close(fd)) return write_abort(s, errno, "write");
    if (rename(wr->tmp, wr->path)) return write_abort(s, errno, "rename");
    struct buf b = { 0 };
    buf_printf(&b, "{\"bytes\":%llu}", (unsigned long long)wr->bytes);
    send_json(s->c, s->id, F_RESULT, &b);
    stream_end(s);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

void files_open(struct stream *s, jv *req)
{
    jv *pv = jget(req, "path");
    if (!pv || pv->t != JSTR || !path_valid(pv->s, pv->slen)) {
        send_error(s->c, s->id, "INVALID_PATH", 0,
                   "\"path\" must be an absolute path without '..' components or NUL bytes");
        return stream_end(s);
    }
    const char *path = pv->s;
    switch (s->op) {
    case OP_STAT: return do_stat(s, path);
    case OP_LIST: return open_list(s, path);
    case OP_READ: return open_read(s, path);
    case OP_WRITE: return open_write(s, path, req);
    case OP_MKDIR: return do_mkdir(s, path, req);
    case OP_REMOVE: return do_remove(s, path, req);
    case OP_CHMOD: return do_chmod(s, path, req);
    }
    send_error(s->c, s->id, "UNSUPPORTED", 0, "unsupported op");
    stream_end(s);
}

/* Release resources without sending anything (connection gone). */
void files_teardown(struct stream *s)
{
    switch (s->op) {
    case OP_READ:
        if (s->u.rd.fd >= 0) close(s->u.rd.fd);
        s->u.rd.fd = -1;
        break;
    case OP_LIST:
        if (s->u.ls.dir) closedir(s->u.ls.dir);
        s->u.ls.dir = NULL;
        break;
    case OP_WRITE: write_abort(s, 0, NULL); break;
    }
}

void files_cancel(struct stream *s)
{
    files_teardown(s);
    send_error(s->c, s->id, "CANCELLED", 0, "cancelled by the client");
    stream_end(s);
}
