/* exec service: fork/exec with pipes, process groups, timeouts, flow control. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_ARGS 65536
/* pty: after the leader was reaped, read what the terminal still holds until it is empty
 * (EAGAIN) or EIO; a process that keeps the slave open and keeps writing cannot hold the
 * exec open for longer than this many bytes. */
#define PTY_DRAIN_MAX (256u * 1024u)

/* ---- child side (runs between fork and exec) -------------------------------- */

/* The child runs after vfork(): it shares our memory until it execs, so it must
 * not touch the heap or stdio. Messages are built on the stack and written raw. */
static void child_msg(const char *a, const char *b, const char *c, const char *d)
{
    char msg[1024];
    size_t n = 0;
    const char *parts[] = { "scaibunker-agent: ", a, b, c, d, "\n" };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (!parts[i]) continue;
        size_t l = strlen(parts[i]);
        if (l > sizeof msg - 1 - n) l = sizeof msg - 1 - n;
        memcpy(msg + n, parts[i], l);
        n += l;
    }
    ssize_t r = write(2, msg, n);
    (void)r;
}

static void __attribute__((noreturn)) child_die(int code, const char *what, const char *arg, int err)
{
    child_msg(what, arg ? " " : NULL, arg, ": ");
    child_msg(strerror(err), NULL, NULL, NULL);
    _exit(code);
}

static const char *env_get(char **envp, const char *key)
{
    size_t kl = strlen(key);
    for (; *envp; envp++)
        if (!strncmp(*envp, key, kl) && (*envp)[kl] == '=') return *envp + kl + 1;
    return NULL;
}

/* execve, falling back to /bin/sh for a script without #! (like execvp). */
static void try_exec(const char *path, char **argv, char **envp)
{
    execve(path, argv, envp);
    if (errno == ENOEXEC) {
        char *nargv[256];
        size_t n = 0;
        while (argv[n]) n++;
        if (n + 2 > sizeof nargv / sizeof nargv[0]) {
            errno = ENOEXEC;
            return;
        }
        nargv[0] = "sh";
        nargv[1] = (char *)path;
        for (size_t i = 1; i <= n; i++) nargv[i + 1] = argv[i];
        execve("/bin/sh", nargv, envp);
        errno = ENOEXEC;
    }
}

/* PATH search using the *request's* PATH (execvpe would use the agent's). */
static int exec_search(char **argv, char **envp)
{
    const char *file = argv[0];
    if (strchr(file, '/')) {
        try_exec(file, argv, envp);
        return errno;
    }
    const char *path = env_get(envp, "PATH");
    if (!path) path = DEFAULT_PATH;
    int saw_eacces = 0, last = ENOENT;
    size_t fl = strlen(file);
    char full[PATH_MAX];
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t dl = colon ? (size_t)(colon - p) : strlen(p);
        if (dl + 1 + fl + 1 <= sizeof full) {
            size_t o = 0;
            if (dl == 0) full[o++] = '.';
            memcpy(full + o, p, dl);
            o += dl;
            full[o++] = '/';
            memcpy(full + o, file, fl + 1);
            try_exec(full, argv, envp);
            switch (errno) {
            case EACCES: saw_eacces = 1; break;
            case ENOENT:
            case ENOTDIR:
            case ESTALE:
            case ENODEV:
            case ETIMEDOUT:
            case ELOOP:
            case ENAMETOOLONG: break;
            default: return errno;
            }
            last = errno;
        }
        if (!colon) break;
        p = colon + 1;
    }
    return saw_eacces ? EACCES : (last == ENOTDIR || last == ELOOP || last == ENAMETOOLONG ? ENOENT : last);
}

struct spawn {
    char **argv, **envp;
    const char *cwd, *home;
    struct userinfo *ui;
    int switch_user;
    int die_with_agent; /* not PID 1: SIGKILL the command if the agent dies */
    int in_r, out_w, err_w;
    int pty; /* in_r == out_w == err_w is the terminal's slave: make it the controlling tty */
};

static void __attribute__((noreturn)) child_main(struct spawn *sp)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    if (dup2(sp->in_r, 0) < 0 || dup2(sp->out_w, 1) < 0 || dup2(sp->err_w, 2) < 0) _exit(126);
    if (sp->pty && ioctl(0, TIOCSCTTY, 0)) child_die(126, "ioctl", "TIOCSCTTY", errno);
    umask(022);
    if (sp->switch_user) {
        if (geteuid() == 0 && setgroups((size_t)sp->ui->ngroups, sp->ui->groups))
            child_die(126, "setgroups", NULL, errno);
        if (getgid() != sp->ui->gid && setgid(sp->ui->gid)) child_die(126, "setgid", NULL, errno);
        if (getuid() != sp->ui->uid && setuid(sp->ui->uid)) child_die(126, "setuid", NULL, errno);
    }
    /* after setuid: a credential change clears the parent-death signal */
    if (sp->die_with_agent) prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (sp->cwd) {
        if (chdir(sp->cwd)) child_die(126, "chdir", sp->cwd, errno);
    } else if (chdir(sp->home) && chdir("/")) {
        /* no usable directory at all: stay where we are */
    }
    int e = exec_search(sp->argv, sp->envp);
    if (e == ENOENT) {
        child_msg(sp->argv[0], ": command not found", NULL, NULL);
        _exit(127);
    }
    child_die(126, "exec", sp->argv[0], e);
}

/* vfork: the parent sleeps until the child execs or exits, and no page tables are
 * copied; noticeably cheaper than fork() even for a small process. */
static pid_t __attribute__((noinline)) spawn_child(struct spawn *sp)
{
    pid_t pid = vfork();
    if (pid == 0) child_main(sp);
    return pid;
}

/* ---- parent side ----------------------------------------------------------------- */

static int valid_str(const jv *v) { return v && v->t == JSTR && memchr(v->s, 0, v->slen) == NULL; }

static int env_set(char ***envp, size_t *n, size_t *cap, const char *k, size_t kl, const char *v, size_t vl)
{
    char *kv = xmalloc(kl + vl + 2);
    memcpy(kv, k, kl);
    kv[kl] = '=';
    memcpy(kv + kl + 1, v, vl);
    kv[kl + vl + 1] = 0;
    for (size_t i = 0; i < *n; i++)
        if (!strncmp((*envp)[i], k, kl) && (*envp)[i][kl] == '=') {
            free((*envp)[i]);
            (*envp)[i] = kv;
            return 0;
        }
    if (*n + 2 > *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *envp = xrealloc(*envp, *cap * sizeof **envp);
    }
    (*envp)[(*n)++] = kv;
    (*envp)[*n] = NULL;
    return 0;
}

static void free_env(char **envp)
{
    if (!envp) return;
    for (char **p = envp; *p; p++) free(*p);
    free(envp);
}

void exec_update(struct stream *s)
{
    struct exec_st *ex = &s->u.ex;
    struct conn *c = s->c;
    uint32_t want = 0;
    if (s->credit > 0) {
        if (conn_can_send(c)) want = EPOLLIN;
        else c->throttled = 1;
    }
    src_want(&ex->out, want);
    src_want(&ex->err, want);
    src_want(&ex->in, ex->inbuf.len || ex->veof_pending ? EPOLLOUT : 0);
    /* pty after the leader exited: epoll may never report the master (a grandchild holds
     * the slave open, nothing to read), so try a read each turn until EAGAIN/EIO */
    if (ex->pty && ex->exited && ex->out.fd >= 0 && want) runq_add(s);
}

static void close_ptm(struct exec_st *ex)
{
    if (ex->ptm >= 0) close(ex->ptm);
    ex->ptm = -1;
}

static void exec_kill(struct stream *s)
{
    struct exec_st *ex = &s->u.ex;
    if (ex->pid > 0) {
        kill(-ex->pid, SIGKILL);
        kill_session(ex->pid);
    }
    ex->killed = 1;
}

/* The result goes out once the leader was reaped and both pipes reached EOF.
 * After a timeout or cancel we stop waiting for EOF: a process that escaped the
 * group (setsid) could otherwise hold the pipes open forever. */
static void exec_maybe_finish(struct stream *s)
{
    struct exec_st *ex = &s->u.ex;
    if (!ex->exited) return;
    if (ex->killed) {
        src_close(&ex->out);
        src_close(&ex->err);
    }
    if (ex->out.fd >= 0 || ex->err.fd >= 0) {
        if (ex->pty) exec_update(s); /* schedules the drain of the master */
        return;
    }
    src_close(&ex->in);
    close_ptm(ex);
    struct buf b = { 0 };
    char scratch[16];
    buf_putc(&b, '{');
    json_key(&b, "exit_code");
    if (WIFEXITED(ex->status)) buf_printf(&b, "%d", WEXITSTATUS(ex->status));
    else buf_puts(&b, "null");
    json_key(&b, "signal");
    if (WIFSIGNALED(ex->status)) {
        const char *sn = signal_name(WTERMSIG(ex->status), scratch, sizeof scratch);
        json_str(&b, sn, strlen(sn));
    } else {
        buf_puts(&b, "null");
    }
    json_key(&b, "timed_out");
    buf_puts(&b, ex->timed_out ? "true" : "false");
    json_key(&b, "duration_ms");
    buf_printf(&b, "%.3f", (double)(ex->end_ns - ex->start_ns) / 1e6);
    json_key(&b, "pid");
    buf_printf(&b, "%d", (int)ex->pid);
    buf_putc(&b, '}');
    send_json(s->c, s->id, F_RESULT, &b);
    stream_end(s);
}

/* STARTED: the command was forked; precedes every STDOUT/STDERR frame of the stream. */
static void send_started(struct stream *s)
{
    struct buf b = { 0 };
    buf_printf(&b, "{\"pid\":%d}", (int)s->u.ex.pid);
    send_json(s->c, s->id, F_STARTED, &b);
}

/* Takes ownership of args and envp. */
static void exec_spawn_pty(struct stream *s, char **args, char **envp, const char *cwd, struct userinfo *ui,
                           int switch_user, int cols, int rows, int64_t timeout_ms)
{
    struct exec_st *ex = &s->u.ex;
    struct conn *c = s->c;
    struct exec_pty p;
    int e = pty_open(&p, cols, rows, ui->uid, switch_user);
    if (e) {
        free(args);
        free_env(envp);
        send_error(c, s->id, "IO_ERROR", e, "pty: %s", strerror(e));
        stream_end(s);
        return;
    }
    struct spawn sp = {
        .argv = args,
        .envp = envp,
        .cwd = cwd,
        .home = ui->home,
        .ui = ui,
        .switch_user = switch_user,
        .die_with_agent = getpid() != 1,
        .in_r = p.pts,
        .out_w = p.pts,
        .err_w = p.pts,
        .pty = 1,
    };
    ex->start_ns = now_ns();
    pid_t pid = spawn_child(&sp);
    int fork_err = errno;
    free(args);
    free_env(envp);
    close(p.pts); /* only the child holds the slave: the master reads EIO once it is gone */
    p.pts = -1;
    if (pid < 0) {
        pty_close(&p);
        send_error(c, s->id, "IO_ERROR", fork_err, "fork: %s", strerror(fork_err));
        stream_end(s);
        return;
    }
    ex->pid = pid;
    ex->pty = 1;
    ex->ptm = p.ptm;
    ex->out.fd = p.rd;
    ex->in.fd = p.wr;
    send_started(s);
    if (timeout_ms) ex->deadline_ns = ex->start_ns + timeout_ms * 1000000LL;
    exec_update(s);
}

void exec_open(struct stream *s, jv *req)
{
    struct conn *c = s->c;
    struct exec_st *ex = &s->u.ex;
    src_init(&ex->out, K_EXEC_OUT, -1, s);
    src_init(&ex->err, K_EXEC_ERR, -1, s);
    src_init(&ex->in, K_EXEC_IN, -1, s);
    ex->ptm = -1;

    jv *argv = jget(req, "argv");
    if (!argv || argv->t != JARR || argv->n == 0 || argv->n > MAX_ARGS) {
        send_error(c, s->id, "INVALID_ARGUMENT", 0, "\"argv\" must be a non-empty array of strings");
        stream_end(s);
        return;
    }
    for (size_t i = 0; i < argv->n; i++)
        if (!valid_str(argv->items[i]) || (i == 0 && argv->items[i]->slen == 0)) {
            send_error(c, s->id, "INVALID_ARGUMENT", 0, "argv[%zu] must be a string without NUL bytes", i);
            stream_end(s);
            return;
        }
    jv *env = jget(req, "env");
    if (env && env->t != JNULL) {
        int ok = env->t == JOBJ;
        for (size_t i = 0; ok && i < env->n; i++)
            ok = valid_str(env->items[i]) && env->klens[i] > 0 && !memchr(env->keys[i], '=', env->klens[i]) &&
                 !memchr(env->keys[i], 0, env->klens[i]);
        if (!ok) {
            send_error(c, s->id, "INVALID_ARGUMENT", 0,
                       "\"env\" must map names (no '=' or NUL) to strings (no NUL)");
            stream_end(s);
            return;
        }
    }
    jv *cwd = jget(req, "cwd");
    if (cwd && cwd->t == JNULL) cwd = NULL;
    if (cwd && (!valid_str(cwd) || cwd->s[0] != '/')) {
        send_error(c, s->id, "INVALID_PATH", 0, "\"cwd\" must be an absolute path");
        stream_end(s);
        return;
    }
    jv *user = jget(req, "user");
    char userbuf[32];
    const char *userspec = NULL;
    if (user && user->t == JSTR && valid_str(user) && user->slen) userspec = user->s;
    else if (user && user->t == JNUM && user->num >= 0 && user->num < 4294967295.0) {
        snprintf(userbuf, sizeof userbuf, "%lu", (unsigned long)user->num);
        userspec = userbuf;
    } else if (user && user->t != JNULL && !(user->t == JSTR && user->slen == 0)) {
        send_error(c, s->id, "INVALID_ARGUMENT", 0, "\"user\" must be a name or uid");
        stream_end(s);
        return;
    }
    jv *tmo = jget(req, "timeout_ms");
    int64_t timeout_ms = 0;
    if (tmo && tmo->t == JNUM && tmo->num > 0) timeout_ms = (int64_t)tmo->num;
    else if (tmo && tmo->t != JNULL && !(tmo->t == JNUM && tmo->num == 0)) {
        send_error(c, s->id, "INVALID_ARGUMENT", 0, "\"timeout_ms\" must be a non-negative number");
        stream_end(s);
        return;
    }
    jv *stdinv = jget(req, "stdin");
    int want_stdin = stdinv && stdinv->t == JBOOL && stdinv->b;
    jv *ptyv = jget(req, "pty");
    int cols = 0, rows = 0, use_pty = 0;
    if (ptyv && ptyv->t != JNULL) {
        if (pty_parse(ptyv, &cols, &rows) != 1) {
            send_error(c, s->id, "INVALID_ARGUMENT", 0,
                       "\"pty\" must be {\"cols\": 1..1000, \"rows\": 1..1000} (integers)");
            stream_end(s);
            return;
        }
        use_pty = 1;
    }

    struct userinfo ui;
    char msg[512];
    if (resolve_user(userspec, &ui, msg, sizeof msg)) {
        send_error(c, s->id, "INVALID_ARGUMENT", 0, "%s", msg);
        stream_end(s);
        return;
    }
    if (cwd) {
        struct stat st;
        if (stat(cwd->s, &st)) {
            send_errno(c, s->id, errno, "cwd", cwd->s);
            stream_end(s);
            return;
        }
        if (!S_ISDIR(st.st_mode)) {
            send_errno(c, s->id, ENOTDIR, "cwd", cwd->s);
            stream_end(s);
            return;
        }
    }

    /* environment: defaults, then the request's map on top */
    char **envp = NULL;
    size_t en = 0, ecap = 0;
    env_set(&envp, &en, &ecap, "PATH", 4, DEFAULT_PATH, strlen(DEFAULT_PATH));
    env_set(&envp, &en, &ecap, "HOME", 4, ui.home, strlen(ui.home));
    if (ui.name[0]) {
        env_set(&envp, &en, &ecap, "USER", 4, ui.name, strlen(ui.name));
        env_set(&envp, &en, &ecap, "LOGNAME", 7, ui.name, strlen(ui.name));
    }
    if (use_pty) env_set(&envp, &en, &ecap, "TERM", 4, "xterm-256color", 14);
    if (env && env->t == JOBJ)
        for (size_t i = 0; i < env->n; i++)
            env_set(&envp, &en, &ecap, env->keys[i], env->klens[i], env->items[i]->s, env->items[i]->slen);

    char **args = xmalloc((argv->n + 1) * sizeof *args);
    for (size_t i = 0; i < argv->n; i++) args[i] = argv->items[i]->s;
    args[argv->n] = NULL;

    if (use_pty) {
        exec_spawn_pty(s, args, envp, cwd ? cwd->s : NULL, &ui, userspec != NULL, cols, rows, timeout_ms);
        return;
    }
    int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
    if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (pin[i] >= 0) close(pin[i]);
            if (pout[i] >= 0) close(pout[i]);
            if (perr[i] >= 0) close(perr[i]);
        }
        free(args);
        free_env(envp);
        send_error(c, s->id, "IO_ERROR", e, "pipe: %s", strerror(e));
        stream_end(s);
        return;
    }
    struct spawn sp = {
        .argv = args,
        .envp = envp,
        .cwd = cwd ? cwd->s : NULL,
        .home = ui.home,
        .ui = &ui,
        .switch_user = userspec != NULL,
        .die_with_agent = getpid() != 1,
        .in_r = pin[0],
        .out_w = pout[1],
        .err_w = perr[1],
    };
    ex->start_ns = now_ns();
    pid_t pid = spawn_child(&sp);
    int fork_err = errno;
    free(args);
    free_env(envp);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (pid < 0) {
        close(pin[1]);
        close(pout[0]);
        close(perr[0]);
        send_error(c, s->id, "IO_ERROR", fork_err, "fork: %s", strerror(fork_err));
        stream_end(s);
        return;
    }
    ex->pid = pid;
    send_started(s);
    if (timeout_ms) ex->deadline_ns = ex->start_ns + timeout_ms * 1000000LL;
    set_nonblock(pin[1]);
    set_nonblock(pout[0]);
    set_nonblock(perr[0]);
    ex->out.fd = pout[0];
    ex->err.fd = perr[0];
    if (want_stdin) {
        ex->in.fd = pin[1];
    } else {
        close(pin[1]); /* the child reads EOF at once */
        ex->stdin_broken = 1;
    }
    exec_update(s);
}

static void exec_read_output(struct stream *s, struct src *src, uint8_t type)
{
    struct conn *c = s->c;
    if (s->credit <= 0 || !conn_can_send(c)) {
        exec_update(s);
        return;
    }
    size_t n = s->credit < (int64_t)CHUNK_SIZE ? (size_t)s->credit : CHUNK_SIZE;
    char *p = frame_begin(c, n);
    if (!p) {
        conn_close(c, "out of memory");
        return;
    }
    struct exec_st *ex = &s->u.ex;
    ssize_t r = read(src->fd, p, n);
    int done = 0;
    if (r > 0) {
        frame_commit(c, s->id, type, (size_t)r);
        s->credit -= r;
        if (ex->pty && ex->exited) done = (ex->drained += (uint64_t)r) > PTY_DRAIN_MAX;
    } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        done = 1; /* EOF; a pty master reads EIO once every slave fd is closed */
    } else if (errno == EAGAIN && ex->pty && ex->exited) {
        done = 1; /* leader gone and the terminal drained */
    }
    if (done) {
        src_close(src);
        exec_maybe_finish(s);
        if (s->dead) return;
    }
    exec_update(s);
}

static void stdin_broken(struct stream *s)
{
    struct exec_st *ex = &s->u.ex;
    ex->stdin_broken = 1;
    uint32_t dropped = (uint32_t)ex->inbuf.len;
    buf_free(&ex->inbuf);
    src_close(&ex->in);
    stream_grant(s, dropped, 1);
}

static void exec_flush_stdin(struct stream *s)
{
    struct exec_st *ex = &s->u.ex;
    while (ex->inbuf.len && ex->in.fd >= 0) {
        ssize_t r = write(ex->in.fd, buf_data(&ex->inbuf), ex->inbuf.len);
        if (r > 0) {
            buf_consume(&ex->inbuf, (size_t)r);
            stream_grant(s, (uint32_t)r, ex->inbuf.len == 0);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) break;
        stdin_broken(s); /* EPIPE: the child closed its stdin */
        return;
    }
    if (!ex->inbuf.len && ex->stdin_eof && ex->in.fd >= 0) {
        if (ex->veof_pending) { /* pty: EOF is the terminal's VEOF character, sent once */
            char ch = pty_veof(ex->ptm);
            ssize_t r;
            do r = write(ex->in.fd, &ch, 1);
            while (r < 0 && errno == EINTR);
            if (r < 0 && errno == EAGAIN) {
                exec_update(s); /* retried on EPOLLOUT */
                return;
            }
            ex->veof_pending = 0;
        }
        src_close(&ex->in);
    }
    exec_update(s);
}

void exec_event(struct src *src, uint32_t events)
{
    struct stream *s = src->owner;
    (void)events;
    if (s->dead) return;
    switch (src->kind) {
    case K_EXEC_OUT: exec_read_output(s, src, F_STDOUT); break;
    case K_EXEC_ERR: exec_read_output(s, src, F_STDERR); break;
    case K_EXEC_IN: exec_flush_stdin(s); break;
    }
}

void exec_data(struct stream *s, const char *p, size_t n)
{
    struct exec_st *ex = &s->u.ex;
    if (ex->stdin_broken || ex->stdin_eof || ex->in.fd < 0) {
        stream_grant(s, (uint32_t)n, 0); /* nobody reads it: drop, but keep the client's credit flowing */
        return;
    }
    if (!ex->inbuf.len) { /* fast path: straight into the pipe */
        while (n) {
            ssize_t r = write(ex->in.fd, p, n);
            if (r > 0) {
                p += r;
                n -= (size_t)r;
                stream_grant(s, (uint32_t)r, n == 0);
                continue;
            }
            if (r < 0 && errno == EINTR) continue;
            if (r < 0 && errno == EAGAIN) break;
            stdin_broken(s);
            stream_grant(s, (uint32_t)n, 1);
            return;
        }
    }
    if (n && buf_append(&ex->inbuf, p, n)) {
        conn_close(s->c, "out of memory");
        return;
    }
    exec_update(s);
}

void exec_eof(struct stream *s)
{
    struct exec_st *ex = &s->u.ex;
    if (ex->stdin_eof) return;
    ex->stdin_eof = 1;
    if (ex->pty && ex->in.fd >= 0 && !ex->stdin_broken) {
        ex->veof_pending = 1;
        if (!ex->inbuf.len) exec_flush_stdin(s);
        return;
    }
    if (!ex->inbuf.len) src_close(&ex->in);
}

void exec_cancel(struct stream *s)
{
    exec_kill(s);
    exec_maybe_finish(s);
}

void exec_signal(struct stream *s, jv *req)
{
    jv *sv = jget(req, "signal");
    int sig = -1;
    if (sv && sv->t == JSTR) sig = signal_from_name(sv->s);
    else if (sv && sv->t == JNUM) sig = (int)sv->num;
    if (sig < 1 || sig > 64) {
        logmsg("SIGNAL frame with an unknown signal ignored");
        return;
    }
    struct exec_st *ex = &s->u.ex;
    if (ex->pid <= 0) return;
    /* pty: like a key typed at the terminal, the signal goes to its foreground process
     * group (a job an interactive shell started), which is the leader's group otherwise */
    pid_t pg = ex->pty ? pty_foreground(ex->ptm) : -1;
    kill(-(pg > 0 ? pg : ex->pid), sig);
}

void exec_resize(struct stream *s, jv *req)
{
    struct exec_st *ex = &s->u.ex;
    int cols, rows;
    if (!ex->pty) {
        logmsg("RESIZE on stream %u: not a pty exec; ignored", s->id);
        return;
    }
    if (pty_parse(req, &cols, &rows) != 1) {
        logmsg("RESIZE on stream %u: cols/rows must be integers 1..1000; ignored", s->id);
        return;
    }
    if (ex->ptm < 0) return;
    int e = pty_set_size(ex->ptm, cols, rows);
    if (e) logmsg("RESIZE on stream %u: TIOCSWINSZ: %s", s->id, strerror(e));
}

void exec_produce(struct stream *s)
{
    struct exec_st *ex = &s->u.ex;
    if (ex->out.fd >= 0) exec_read_output(s, &ex->out, F_STDOUT);
}

void exec_teardown(struct stream *s)
{
    struct exec_st *ex = &s->u.ex;
    if (ex->pid > 0) {
        kill(-ex->pid, SIGKILL);
        kill_session(ex->pid);
    }
    src_close(&ex->out);
    src_close(&ex->err);
    src_close(&ex->in);
    close_ptm(ex);
}

static struct stream *find_exec(pid_t pid)
{
    for (struct conn *c = g_conns; c; c = c->next)
        for (struct stream *s = c->streams; s; s = s->next)
            if (s->op == OP_EXEC && s->u.ex.pid == pid && !s->u.ex.exited) return s;
    return NULL;
}

int g_no_children;

void exec_reap_all(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0 && errno == ECHILD) g_no_children = 1;
        if (pid <= 0) break;
        struct stream *s = find_exec(pid);
        if (!s) continue; /* an orphan we inherited, or an exec whose connection closed */
        s->u.ex.exited = 1;
        s->u.ex.status = status;
        s->u.ex.end_ns = now_ns();
        exec_maybe_finish(s);
    }
}

int64_t exec_check_timeouts(int64_t now)
{
    int64_t next = 0;
    for (struct conn *c = g_conns; c; c = c->next) {
        struct stream *s = c->streams;
        while (s) {
            struct stream *nx = s->next; /* exec_maybe_finish may end s */
            struct exec_st *ex = &s->u.ex;
            if (s->op == OP_EXEC && ex->deadline_ns && !ex->timed_out) {
                if (now >= ex->deadline_ns) {
                    ex->timed_out = 1;
                    exec_kill(s);
                    exec_maybe_finish(s);
                } else if (!next || ex->deadline_ns < next) {
                    next = ex->deadline_ns;
                }
            }
            s = nx;
        }
    }
    return next;
}

void exec_kill_all(int sig)
{
    for (struct conn *c = g_conns; c; c = c->next)
        for (struct stream *s = c->streams; s; s = s->next)
            if (s->op == OP_EXEC && s->u.ex.pid > 0) kill(-s->u.ex.pid, sig);
}
