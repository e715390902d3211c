/* Errors, checked allocation, clock. */
#include "core.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Messages quote file contents (a misspelt key, a bad field), which may hold
 * line breaks or terminal escapes: control characters become '?', so an
 * error is always one line that cannot rewrite the user's terminal. */
static void one_line(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

int error_set(Error *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    one_line(err->msg);
    return -1;
}

int error_prefix(Error *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is fine here: the message is for a person's terminal. */
    size_t cap = sizeof err->msg, n = strlen(prefix);
    if (n > cap - 3) n = cap - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = strnlen(old, sizeof old);
    if (rest > cap - n - 3) rest = cap - n - 3;
    memcpy(err->msg + n + 2, old, rest);
    err->msg[n + 2 + rest] = 0;
    one_line(err->msg);
    return -1;
}

static void *check_alloc(void *p, size_t n) {
    if (!p && n) {
        fprintf(stderr, "metamers: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

void *xmalloc(size_t n) { return check_alloc(malloc(n ? n : 1), n); }

void *xcalloc(size_t count, size_t size) {
    return check_alloc(calloc(count ? count : 1, size ? size : 1), count * size);
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) p = NULL;
    check_alloc(p, bytes ? bytes : 64);
    return p;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
