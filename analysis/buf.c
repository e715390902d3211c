/* Text buffers and string interning for the analysis module. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ana_internal.h"

static void buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *s = xmalloc(cap);
    if (b->s) memcpy(s, b->s, b->len + 1);
    free(b->s);
    b->s = s;
    b->cap = cap;
}

void buf_put(Buf *b, const char *s, size_t n) {
    buf_reserve(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void buf_puts(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }

void buf_vprintf(Buf *b, const char *fmt, va_list ap) {
    if (!fmt) return; /* also keeps GCC's -Wformat-truncation quiet under UBSan */
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    buf_reserve(b, (size_t)n);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_printf(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void buf_csv_field(Buf *b, const char *s) {
    if (!table_field_needs_quotes(s)) {
        buf_puts(b, s);
        return;
    }
    buf_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"') buf_put(b, "\"", 1);
        buf_put(b, p, 1);
    }
    buf_put(b, "\"", 1);
}

void buf_num(Buf *b, double x, int digits) {
    if (isnan(x))
        buf_puts(b, "NaN");
    else if (isinf(x))
        buf_puts(b, x > 0 ? "Inf" : "-Inf");
    else
        buf_printf(b, "%.*g", digits, x);
}

void buf_xml(Buf *b, const char *s) {
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&': buf_puts(b, "&amp;"); break;
        case '<': buf_puts(b, "&lt;"); break;
        case '>': buf_puts(b, "&gt;"); break;
        case '"': buf_puts(b, "&quot;"); break;
        default: buf_put(b, p, 1);
        }
    }
}

void buf_free(Buf *b) {
    free(b->s);
    *b = (Buf){0};
}

int buf_write(const Buf *b, const char *dir, const char *name, Error *err) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = xmalloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    int rc = atomic_write_file(path, b->s ? b->s : "", b->len, 0644, err);
    free(path);
    return rc;
}

/* ------------------------------------------------------------ StrPool */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static void strpool_rehash(StrPool *p, int n_slots) {
    free(p->slots);
    p->slots = xcalloc((size_t)n_slots, sizeof *p->slots);
    p->n_slots = n_slots;
    for (int id = 0; id < p->n; id++) {
        uint32_t h = hash_bytes(p->str[id], strlen(p->str[id])) & (uint32_t)(n_slots - 1);
        while (p->slots[h]) h = (h + 1) & (uint32_t)(n_slots - 1);
        p->slots[h] = id + 1;
    }
}

static int strpool_lookup(const StrPool *p, const char *s, size_t len, uint32_t *slot) {
    if (!p->n_slots) return -1;
    uint32_t mask = (uint32_t)(p->n_slots - 1), h = hash_bytes(s, len) & mask;
    for (; p->slots[h]; h = (h + 1) & mask) {
        const char *t = p->str[p->slots[h] - 1];
        if (strncmp(t, s, len) == 0 && t[len] == 0) return p->slots[h] - 1;
    }
    if (slot) *slot = h;
    return -1;
}

int strpool_intern_n(StrPool *p, const char *s, size_t len) {
    uint32_t slot = 0;
    int id = strpool_lookup(p, s, len, &slot);
    if (id >= 0) return id;
    if (2 * (p->n + 1) > p->n_slots) { /* keep load <= 1/2 */
        strpool_rehash(p, p->n_slots ? 2 * p->n_slots : 64);
        strpool_lookup(p, s, len, &slot);
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        char **str = xmalloc((size_t)p->cap * sizeof *str);
        if (p->n) memcpy(str, p->str, (size_t)p->n * sizeof *str);
        free(p->str);
        p->str = str;
    }
    char *copy = xmalloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = 0;
    p->str[p->n] = copy;
    p->slots[slot] = p->n + 1;
    return p->n++;
}

int strpool_intern(StrPool *p, const char *s) { return strpool_intern_n(p, s, strlen(s)); }

int strpool_find(const StrPool *p, const char *s) { return strpool_lookup(p, s, strlen(s), NULL); }

const char *strpool_get(const StrPool *p, int id) {
    return id >= 0 && id < p->n ? p->str[id] : "";
}

void strpool_free(StrPool *p) {
    for (int i = 0; i < p->n; i++) free(p->str[i]);
    free(p->str);
    free(p->slots);
    *p = (StrPool){0};
}

bool is_na(const char *s) {
    return !s[0] || strcmp(s, "n/a") == 0 || strcmp(s, "N/A") == 0 || strcmp(s, "NA") == 0;
}
