/* User resolution from the bunker's own /etc/passwd and /etc/group.
 * No NSS: a static binary must not dlopen nss modules, and the bunker's
 * files are the only source of truth. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads a whole (small) file. Caller frees. */
static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct buf b = { 0 };
    for (;;) {
        if (buf_reserve(&b, 4096)) break;
        ssize_t r = read(fd, buf_tail(&b), 4096);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        b.len += (size_t)r;
        if (b.len > 16 * 1024 * 1024) break;
    }
    close(fd);
    if (buf_reserve(&b, 1)) { buf_free(&b); return NULL; }
    buf_data(&b)[b.len] = 0;
    *len = b.len;
    return b.p; /* off is 0: never consumed */
}

/* Splits line into at most max ':'-separated fields (in place). */
static int split(char *line, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == ':') {
            *p = 0;
            f[n++] = p + 1;
        }
    return n;
}

static int parse_id(const char *s, unsigned long *out)
{
    if (!*s) return -1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || errno || v > 0xFFFFFFFEul || *s == '-' || *s == '+') return -1;
    *out = v;
    return 0;
}

static void copy(char *dst, size_t n, const char *src)
{
    size_t l = strlen(src);
    if (l >= n) l = n - 1;
    memcpy(dst, src, l);
    dst[l] = 0;
}

/* Look up a passwd entry by name (byname=1) or uid. Returns 1 if found. */
static int pw_lookup(const char *name, uid_t uid, int byname, struct userinfo *u)
{
    size_t len;
    char *data = slurp("/etc/passwd", &len);
    if (!data) return 0;
    int found = 0;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[7];
        if (split(line, f, 7) < 7) continue;
        unsigned long pu, pg;
        if (parse_id(f[2], &pu) || parse_id(f[3], &pg)) continue;
        if (byname ? strcmp(f[0], name) != 0 : (uid_t)pu != uid) continue;
        u->uid = (uid_t)pu;
        u->gid = (gid_t)pg;
        copy(u->name, sizeof u->name, f[0]);
        copy(u->home, sizeof u->home, *f[5] ? f[5] : "/");
        found = 1;
        break;
    }
    free(data);
    return found;
}

/* Group by name -> gid. Returns 1 if found. */
static int gr_lookup(const char *name, gid_t *gid)
{
    size_t len;
    char *data = slurp("/etc/group", &len);
    if (!data) return 0;
    int found = 0;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4];
        unsigned long g;
        if (split(line, f, 4) < 3 || parse_id(f[2], &g)) continue;
        if (!strcmp(f[0], name)) {
            *gid = (gid_t)g;
            found = 1;
            break;
        }
    }
    free(data);
    return found;
}

static void add_group(struct userinfo *u, gid_t g)
{
    for (int i = 0; i < u->ngroups; i++)
        if (u->groups[i] == g) return;
    if (u->ngroups < MAX_GROUPS) u->groups[u->ngroups++] = g;
}

/* Supplementary groups: the primary gid plus every group listing the user. */
static void member_groups(struct userinfo *u)
{
    u->ngroups = 0;
    add_group(u, u->gid);
    if (!u->name[0]) return;
    size_t len;
    char *data = slurp("/etc/group", &len);
    if (!data) return;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4];
        unsigned long g;
        if (split(line, f, 4) < 4 || parse_id(f[2], &g)) continue;
        char *s2 = NULL;
        for (char *m = strtok_r(f[3], ",", &s2); m; m = strtok_r(NULL, ",", &s2))
            if (!strcmp(m, u->name)) {
                add_group(u, (gid_t)g);
                break;
            }
    }
    free(data);
}

int resolve_user(const char *spec, struct userinfo *u, char *msg, size_t msglen)
{
    memset(u, 0, sizeof *u);
    char userpart[256], *grouppart = NULL;
    if (!spec) {
        uid_t me = getuid();
        if (!pw_lookup(NULL, me, 0, u)) {
            u->uid = me;
            u->gid = getgid();
            copy(u->home, sizeof u->home, "/");
        }
        member_groups(u);
        return 0;
    }
    if (strlen(spec) >= sizeof userpart || !*spec) {
        snprintf(msg, msglen, "invalid user \"%s\"", spec);
        return -1;
    }
    copy(userpart, sizeof userpart, spec);
    char *colon = strchr(userpart, ':');
    if (colon) {
        *colon = 0;
        grouppart = colon + 1;
    }
    unsigned long id;
    if (!parse_id(userpart, &id)) {
        if (!pw_lookup(NULL, (uid_t)id, 0, u)) {
            /* Like docker: an unknown numeric uid runs with gid 0 and HOME=/ */
            u->uid = (uid_t)id;
            u->gid = 0;
            copy(u->home, sizeof u->home, "/");
        }
    } else if (!pw_lookup(userpart, 0, 1, u)) {
        snprintf(msg, msglen, "unknown user \"%s\" (not in /etc/passwd)", userpart);
        return -1;
    }
    if (grouppart && *grouppart) {
        gid_t g;
        if (!parse_id(grouppart, &id)) {
            u->gid = (gid_t)id;
        } else if (gr_lookup(grouppart, &g)) {
            u->gid = g;
        } else {
            snprintf(msg, msglen, "unknown group \"%s\" (not in /etc/group)", grouppart);
            return -1;
        }
    }
    member_groups(u);
    return 0;
}
