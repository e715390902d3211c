/* Small tools of the experiment module: a stateless-derivable RNG, paths and
 * wall-clock timestamps. */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "internal.h"

/* ------------------------------------------------------------------ rng */

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void exprng_seed(ExpRng *r, uint64_t a, uint64_t b, uint64_t c) {
    r->s = mix(mix(mix(a + 0x9E3779B97F4A7C15ull) ^ b) + c);
}

uint64_t exprng_next(ExpRng *r) { return mix(r->s += 0x9E3779B97F4A7C15ull); }

uint64_t exprng_below(ExpRng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t threshold = -n % n, x; /* rejection keeps it unbiased */
    do x = exprng_next(r);
    while (x < threshold);
    return x % n;
}

double exprng_uniform(ExpRng *r) { return (double)(exprng_next(r) >> 11) * 0x1.0p-53; }

double exprng_normal(ExpRng *r) {
    double u1 = exprng_uniform(r), u2 = exprng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

void exprng_shuffle(ExpRng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)exprng_below(r, (uint64_t)i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---------------------------------------------------------------- paths */

char *exp_path_dir(const char *path) {
    char *copy = xstrdup(path);
    char *d = xstrdup(dirname(copy));
    free(copy);
    return d;
}

char *exp_path_join(const char *dir, const char *rel) {
    if (rel[0] == '/' || !dir || !*dir || strcmp(dir, ".") == 0) return xstrdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

void exp_iso8601_now(char out[40], double offset_s) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    double t = (double)tv.tv_sec + tv.tv_usec * 1e-6 + offset_s;
    time_t sec = (time_t)floor(t);
    int ms = (int)((t - (double)sec) * 1000.0);
    if (ms > 999) ms = 999;
    struct tm tm;
    localtime_r(&sec, &tm);
    char date[32], zone[8];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof zone, "%z", &tm); /* +0200 -> +02:00 (ISO 8601) */
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%s.%03d%.3s:%.2s", date, ms, zone, zone + 3);
    size_t len = strlen(tmp) < 39 ? strlen(tmp) : 39;
    memcpy(out, tmp, len);
    out[len] = 0;
}
