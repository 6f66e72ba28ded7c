/* Pseudo-terminals for `exec` with "pty": {"cols", "rows"} (PROTOCOL.md §3.2).
 *
 * The agent keeps the master; the child gets the slave as fds 0-2 and as its controlling
 * terminal (exec.c: setsid + TIOCSCTTY). Everything here runs in the parent. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define PTY_MAX_DIM 1000

static int dim(const jv *v, int *out)
{
    if (!v || v->t != JNUM || v->num < 1 || v->num > PTY_MAX_DIM || v->num != (double)(int)v->num) return 0;
    *out = (int)v->num;
    return 1;
}

int pty_parse(jv *req, int *cols, int *rows)
{
    if (!req || req->t != JOBJ) return -1;
    return dim(jget(req, "cols"), cols) && dim(jget(req, "rows"), rows) ? 1 : -1;
}

int pty_set_size(int ptm, int cols, int rows)
{
    struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
    return ioctl(ptm, TIOCSWINSZ, &ws) ? errno : 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

void pty_close(struct exec_pty *p)
{
    close_fd(&p->ptm);
    close_fd(&p->pts);
    close_fd(&p->rd);
    close_fd(&p->wr);
}

int pty_open(struct exec_pty *p, int cols, int rows, uid_t owner, int chown_slave)
{
    p->ptm = p->pts = p->rd = p->wr = -1;
    char name[128];
    int e = 0;
    p->ptm = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (p->ptm < 0) return errno;
    if (grantpt(p->ptm) || unlockpt(p->ptm)) goto fail;
    if ((e = ptsname_r(p->ptm, name, sizeof name))) goto fail_e;
    if ((e = pty_set_size(p->ptm, cols, rows))) goto fail_e;
    p->pts = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (p->pts < 0) goto fail;
    /* like sshd/login: the terminal belongs to the user who runs in it (best effort) */
    if (chown_slave && fchown(p->pts, owner, (gid_t)-1)) logmsg("chown %s: %s", name, strerror(errno));
    if (set_nonblock(p->ptm) < 0) goto fail; /* the open file description: shared with the dups */
    p->rd = fcntl(p->ptm, F_DUPFD_CLOEXEC, 3);
    if (p->rd < 0) goto fail;
    p->wr = fcntl(p->ptm, F_DUPFD_CLOEXEC, 3);
    if (p->wr < 0) goto fail;
    return 0;
fail:
    e = errno;
fail_e:
    pty_close(p);
    return e ? e : EIO;
}

/* The terminal's end-of-file character (^D unless the program changed it). */
char pty_veof(int ptm)
{
    struct termios t;
    if (ptm >= 0 && tcgetattr(ptm, &t) == 0 && t.c_cc[VEOF] != _POSIX_VDISABLE) return (char)t.c_cc[VEOF];
    return 0x04;
}

pid_t pty_foreground(int ptm)
{
    if (ptm < 0) return -1;
    pid_t pg = tcgetpgrp(ptm);
    return pg > 0 ? pg : -1;
}
