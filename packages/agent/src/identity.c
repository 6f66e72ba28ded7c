/* identity: give a bunker its own identity, e.g. after a microVM was restored from a memory
 * snapshot (every clone starts with the snapshot's hostname, machine-id, entropy pool and a
 * stale clock).
 *
 *   {"op":"identity","hostname":"bk-abc","machine_id":"<32 hex>","entropy":"<base64>",
 *    "time_unix_ns":"1732300000123456789"}
 *
 * Every member is optional, at least one is required. All members are validated before
 * anything is changed; the steps then run in this order and stop at the first failure
 * (the steps before it stay applied): sethostname, /etc/machine-id (temp file + rename,
 * 0444), entropy (RNDADDENTROPY credited 8 bits/byte, then RNDRESEEDCRNG), clock_settime.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef RNDRESEEDCRNG
#define RNDRESEEDCRNG _IO('R', 0x07)
#endif

#define MACHINE_ID_PATH "/etc/machine-id"
#define MAX_HOSTNAME 64
#define MAX_ENTROPY 512

static int present(const jv *v) { return v && v->t != JNULL; }

static int hostname_valid(const jv *v)
{
    if (v->t != JSTR || v->slen < 1 || v->slen > MAX_HOSTNAME) return 0;
    for (size_t i = 0; i < v->slen; i++) {
        char ch = v->s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '.'))
            return 0;
    }
    return 1;
}

static int machine_id_valid(const jv *v)
{
    if (v->t != JSTR || v->slen != 32) return 0;
    for (size_t i = 0; i < 32; i++) {
        char ch = v->s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return 0;
    }
    return 1;
}

static int b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

/* Standard base64 (RFC 4648 §4), padding optional. Returns the decoded length, or -1 when the
 * text is not base64 or decodes to more than max bytes. */
static long b64_decode(const char *s, size_t n, unsigned char *out, size_t max)
{
    size_t pad = 0;
    while (pad < 2 && n > pad && s[n - 1 - pad] == '=') pad++;
    if (pad && n % 4) return -1; /* padding only completes a 4-character group */
    n -= pad;
    if (n % 4 == 1) return -1;
    size_t outlen = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (outlen > max) return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(s[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)o;
}

/* A decimal string (≤ 19 digits) or a non-negative integral number. 0, or -1 if invalid. */
static int parse_time_ns(const jv *v, int64_t *out)
{
    if (v->t == JSTR) {
        if (v->slen < 1 || v->slen > 19) return -1;
        uint64_t x = 0;
        for (size_t i = 0; i < v->slen; i++) {
            if (v->s[i] < '0' || v->s[i] > '9') return -1;
            x = x * 10 + (uint64_t)(v->s[i] - '0');
        }
        if (x > (uint64_t)INT64_MAX) return -1;
        *out = (int64_t)x;
        return 0;
    }
    if (v->t == JNUM) {
        /* 2^63 is exact as a double; anything below it converts without overflow */
        if (!(v->num >= 0 && v->num < 9223372036854775808.0) || v->num != (double)(int64_t)v->num) return -1;
        *out = (int64_t)v->num;
        return 0;
    }
    return -1;
}

static void fail_invalid(struct stream *s, const char *msg)
{
    send_error(s->c, s->id, "INVALID_ARGUMENT", 0, "%s", msg);
    stream_end(s);
}

static void fail_errno(struct stream *s, int err, const char *what, const char *path)
{
    send_errno(s->c, s->id, err, what, path);
    stream_end(s);
}

/* /etc/machine-id via a temp file in /etc and rename(2): readers never see a partial id.
 * 0, or an errno with *what set to the failing step. */
static int write_machine_id(const char *id, const char **what)
{
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        uint64_t x = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
        memcpy(rnd, &x, sizeof rnd);
    }
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, "/etc/.machine-id-");
    for (size_t i = 0; i < sizeof rnd; i++) n += snprintf(tmp + n, sizeof tmp - (size_t)n, "%02x", rnd[i]);
    snprintf(tmp + n, sizeof tmp - (size_t)n, ".tmp");

    *what = "write";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0444);
    if (fd < 0) return errno;
    char line[34];
    memcpy(line, id, 32);
    line[32] = '\n';
    int e = 0;
    size_t off = 0;
    while (off < 33) {
        ssize_t r = write(fd, line + off, 33 - off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            e = errno;
            break;
        }
        off += (size_t)r;
    }
    if (!e && fchmod(fd, 0444)) e = errno; /* exact mode whatever the umask */
    if (close(fd) && !e) e = errno;
    if (!e && rename(tmp, MACHINE_ID_PATH)) {
        e = errno;
        *what = "rename";
    }
    if (e) unlink(tmp);
    return e;
}

/* Adds the bytes to the kernel's input pool, credited 8 bits per byte, and reseeds the CRNG
 * so that what is read from getrandom() right after differs between clones. */
static int add_entropy(const unsigned char *p, size_t n, const char **what)
{
    *what = "open";
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return errno;
    struct {
        struct rand_pool_info info;
        uint32_t words[MAX_ENTROPY / 4];
    } req;
    memset(&req, 0, sizeof req);
    req.info.entropy_count = (int)(n * 8);
    req.info.buf_size = (int)n;
    memcpy(req.words, p, n);
    int e = 0;
    *what = "ioctl RNDADDENTROPY";
    if (ioctl(fd, RNDADDENTROPY, &req.info)) e = errno;
    if (!e && ioctl(fd, RNDRESEEDCRNG) && errno != ENOTTY && errno != EINVAL) {
        e = errno;
        *what = "ioctl RNDRESEEDCRNG";
    }
    explicit_bzero(&req, sizeof req);
    close(fd);
    return e;
}

/* Applies the validated members in order; sends the terminal frame. */
static void apply(struct stream *s, const jv *hv, const jv *mv, const unsigned char *entropy, long nent, const jv *tv,
                  int64_t tns)
{
    const char *what;
    int e;
    if (present(hv) && sethostname(hv->s, hv->slen)) return fail_errno(s, errno, "sethostname", hv->s);
    if (present(mv) && (e = write_machine_id(mv->s, &what))) return fail_errno(s, e, what, MACHINE_ID_PATH);
    if (nent > 0 && (e = add_entropy(entropy, (size_t)nent, &what))) return fail_errno(s, e, what, "/dev/urandom");
    if (present(tv)) {
        struct timespec ts = { .tv_sec = (time_t)(tns / 1000000000), .tv_nsec = (long)(tns % 1000000000) };
        if (clock_settime(CLOCK_REALTIME, &ts)) return fail_errno(s, errno, "clock_settime", "CLOCK_REALTIME");
    }

    struct buf b = { 0 };
    buf_putc(&b, '{');
    json_key(&b, "hostname");
    if (present(hv)) json_str(&b, hv->s, hv->slen);
    else buf_puts(&b, "null");
    json_key(&b, "machine_id");
    if (present(mv)) json_str(&b, mv->s, mv->slen);
    else buf_puts(&b, "null");
    json_key(&b, "entropy_bytes");
    buf_printf(&b, "%ld", nent);
    json_key(&b, "clock_set");
    buf_puts(&b, present(tv) ? "true" : "false");
    buf_putc(&b, '}');
    send_json(s->c, s->id, F_RESULT, &b);
    stream_end(s);
}

void identity_open(struct stream *s, jv *req)
{
    jv *hv = jget(req, "hostname");
    jv *mv = jget(req, "machine_id");
    jv *ev = jget(req, "entropy");
    jv *tv = jget(req, "time_unix_ns");
    if (!present(hv) && !present(mv) && !present(ev) && !present(tv))
        return fail_invalid(s, "identity needs at least one of hostname, machine_id, entropy, time_unix_ns");

    /* validate everything before changing anything */
    if (present(hv) && !hostname_valid(hv))
        return fail_invalid(s, "\"hostname\" must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'");
    if (present(mv) && !machine_id_valid(mv))
        return fail_invalid(s, "\"machine_id\" must be 32 lowercase hexadecimal digits");
    int64_t tns = 0;
    if (present(tv) && parse_time_ns(tv, &tns))
        return fail_invalid(s, "\"time_unix_ns\" must be a non-negative integer (decimal string or number)");
    unsigned char entropy[MAX_ENTROPY];
    long nent = 0;
    if (present(ev)) {
        nent = ev->t == JSTR ? b64_decode(ev->s, ev->slen, entropy, sizeof entropy) : -1;
        if (nent < 1) {
            explicit_bzero(entropy, sizeof entropy);
            return fail_invalid(s, "\"entropy\" must be base64 of 1 to 512 bytes");
        }
    }
    apply(s, hv, mv, entropy, nent, tv, tns);
    explicit_bzero(entropy, sizeof entropy);
}
