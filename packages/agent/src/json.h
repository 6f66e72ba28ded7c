/* Minimal JSON reader for request payloads (RFC 8259, depth-limited). */
#ifndef SCAIBUNKER_JSON_H
#define SCAIBUNKER_JSON_H

#include <stddef.h>

enum jtype { JNULL, JBOOL, JNUM, JSTR, JARR, JOBJ };

typedef struct jv {
    enum jtype t;
    int b;       /* JBOOL */
    double num;  /* JNUM */
    char *s;     /* JSTR: NUL-terminated copy (may also contain NULs) */
    size_t slen; /* JSTR: length excluding the terminator */
    struct jv **items; /* JARR / JOBJ values */
    char **keys;       /* JOBJ keys (NUL-terminated) */
    size_t *klens;
    size_t n;
} jv;

jv *json_parse(const char *p, size_t len); /* NULL on any syntax error */
void json_free(jv *v);
jv *jget(const jv *obj, const char *key);  /* NULL if absent or obj is not an object */

#endif
