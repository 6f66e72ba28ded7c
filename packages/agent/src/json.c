/* Minimal JSON parser. Requests are small (<= 1 MiB), so a malloc'd tree is fine. */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

struct jp {
    const char *p, *e;
    int depth;
};

static void ws(struct jp *j)
{
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static jv *jnew(enum jtype t)
{
    jv *v = calloc(1, sizeof *v);
    if (v) v->t = t;
    return v;
}

void json_free(jv *v)
{
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        json_free(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->klens);
    free(v->s);
    free(v);
}

static int hex4(const char *p, unsigned *out)
{
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        x <<= 4;
        if (c >= '0' && c <= '9') x |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') x |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') x |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = x;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string starting at the opening quote. Output is never longer than input. */
static char *parse_str(struct jp *j, size_t *outlen)
{
    j->p++; /* opening quote */
    const char *start = j->p;
    const char *q = start;
    while (q < j->e && *q != '"') {
        if (*q == '\\') q++;
        q++;
    }
    if (q >= j->e) return NULL;
    char *out = malloc((size_t)(q - start) + 1);
    if (!out) return NULL;
    size_t n = 0;
    const char *p = start;
    while (p < q) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) goto bad;
        if (c != '\\') { out[n++] = (char)c; p++; continue; }
        p++;
        if (p >= q) goto bad;
        switch (*p) {
        case '"': out[n++] = '"'; p++; break;
        case '\\': out[n++] = '\\'; p++; break;
        case '/': out[n++] = '/'; p++; break;
        case 'b': out[n++] = '\b'; p++; break;
        case 'f': out[n++] = '\f'; p++; break;
        case 'n': out[n++] = '\n'; p++; break;
        case 'r': out[n++] = '\r'; p++; break;
        case 't': out[n++] = '\t'; p++; break;
        case 'u': {
            unsigned cp, lo;
            if (q - p < 5 || hex4(p + 1, &cp)) goto bad;
            p += 5;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (q - p >= 6 && p[0] == '\\' && p[1] == 'u' && !hex4(p + 2, &lo) && lo >= 0xDC00 &&
                    lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                } else {
                    cp = 0xFFFD; /* lone surrogate */
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            n += put_utf8(out + n, cp);
            break;
        }
        default: goto bad;
        }
    }
    out[n] = 0;
    *outlen = n;
    j->p = q + 1;
    return out;
bad:
    free(out);
    return NULL;
}

static jv *parse_value(struct jp *j);

static int push(jv *v, jv *item, char *key, size_t klen, size_t *cap)
{
    if (v->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        jv **ni = realloc(v->items, nc * sizeof *ni);
        if (!ni) return -1;
        v->items = ni;
        if (v->t == JOBJ) {
            char **nk = realloc(v->keys, nc * sizeof *nk);
            if (!nk) return -1;
            v->keys = nk;
            size_t *nl = realloc(v->klens, nc * sizeof *nl);
            if (!nl) return -1;
            v->klens = nl;
        }
        *cap = nc;
    }
    v->items[v->n] = item;
    if (v->t == JOBJ) {
        v->keys[v->n] = key;
        v->klens[v->n] = klen;
    }
    v->n++;
    return 0;
}

static jv *parse_container(struct jp *j, enum jtype t)
{
    char close = t == JOBJ ? '}' : ']';
    if (++j->depth > MAX_DEPTH) return NULL;
    jv *v = jnew(t);
    if (!v) return NULL;
    size_t cap = 0;
    j->p++;
    ws(j);
    if (j->p < j->e && *j->p == close) {
        j->p++;
        j->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        size_t klen = 0;
        ws(j);
        if (t == JOBJ) {
            if (j->p >= j->e || *j->p != '"') goto bad;
            key = parse_str(j, &klen);
            if (!key) goto bad;
            ws(j);
            if (j->p >= j->e || *j->p != ':') { free(key); goto bad; }
            j->p++;
        }
        jv *item = parse_value(j);
        if (!item) { free(key); goto bad; }
        if (push(v, item, key, klen, &cap)) { free(key); json_free(item); goto bad; }
        ws(j);
        if (j->p >= j->e) goto bad;
        if (*j->p == ',') { j->p++; continue; }
        if (*j->p == close) { j->p++; break; }
        goto bad;
    }
    j->depth--;
    return v;
bad:
    json_free(v);
    return NULL;
}

static int lit(struct jp *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->e - j->p) < n || memcmp(j->p, w, n)) return 0;
    j->p += n;
    return 1;
}

static jv *parse_value(struct jp *j)
{
    ws(j);
    if (j->p >= j->e) return NULL;
    char c = *j->p;
    if (c == '{') return parse_container(j, JOBJ);
    if (c == '[') return parse_container(j, JARR);
    if (c == '"') {
        size_t n;
        char *s = parse_str(j, &n);
        if (!s) return NULL;
        jv *v = jnew(JSTR);
        if (!v) { free(s); return NULL; }
        v->s = s;
        v->slen = n;
        return v;
    }
    if (lit(j, "true")) { jv *v = jnew(JBOOL); if (v) v->b = 1; return v; }
    if (lit(j, "false")) return jnew(JBOOL);
    if (lit(j, "null")) return jnew(JNULL);
    if (c == '-' || (c >= '0' && c <= '9')) {
        char tmp[64];
        size_t n = 0;
        while (j->p + n < j->e && n < sizeof tmp - 1 && strchr("+-0123456789.eE", j->p[n])) {
            tmp[n] = j->p[n];
            n++;
        }
        tmp[n] = 0;
        char *end;
        double d = strtod(tmp, &end);
        if (end != tmp + n || n == 0) return NULL;
        j->p += n;
        jv *v = jnew(JNUM);
        if (v) v->num = d;
        return v;
    }
    return NULL;
}

jv *json_parse(const char *p, size_t len)
{
    struct jp j = { p, p + len, 0 };
    jv *v = parse_value(&j);
    if (!v) return NULL;
    ws(&j);
    if (j.p != j.e) {
        json_free(v);
        return NULL;
    }
    return v;
}

jv *jget(const jv *obj, const char *key)
{
    if (!obj || obj->t != JOBJ) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->n; i++)
        if (obj->klens[i] == kl && !memcmp(obj->keys[i], key, kl)) return obj->items[i];
    return NULL;
}
