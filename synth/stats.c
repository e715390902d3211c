/* Statistics between a metamer's and the natural clip's activations, and
 * between random pairs of natural clips (the null distribution).
 *
 * Ranks come from an LSD radix sort on the floats' bits: activations run to
 * ~10^6 values per stage and the null distribution ranks two vectors per
 * pair and stage, so O(n) instead of qsort's O(n log n) with a callback
 * matters. Ties (relu zeros are common) get their average rank. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"

/* Maps float bits to unsigned keys with the same order. -0 is folded into +0
 * first so the two zeros tie as they compare equal. */
static uint32_t sort_key(float f) {
    if (f == 0) f = 0;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

/* Sorts idx[0..n) by key, stable, 3 passes of 11 bits. */
static void radix_sort(uint32_t *key, uint32_t *idx, size_t n) {
    uint32_t *k2 = xmalloc(n * sizeof *k2), *i2 = xmalloc(n * sizeof *i2);
    for (int shift = 0; shift < 33; shift += 11) {
        size_t count[2049] = {0};
        for (size_t i = 0; i < n; i++) count[((key[i] >> shift) & 2047) + 1]++;
        for (int b = 0; b < 2048; b++) count[b + 1] += count[b];
        for (size_t i = 0; i < n; i++) {
            size_t d = count[(key[i] >> shift) & 2047]++;
            k2[d] = key[i], i2[d] = idx[i];
        }
        uint32_t *t = key;
        key = k2, k2 = t;
        t = idx, idx = i2, i2 = t;
    }
    /* After an odd number of passes the sorted data sit in the scratch
     * buffers (now key/idx) and k2/i2 are the caller's arrays: copy back. */
    memcpy(k2, key, n * sizeof *key);
    memcpy(i2, idx, n * sizeof *idx);
    free(key);
    free(idx);
}

void synth_ranks(const float *x, size_t n, double *ranks) {
    uint32_t *key = xmalloc(n * sizeof *key), *idx = xmalloc(n * sizeof *idx);
    for (size_t i = 0; i < n; i++) key[i] = sort_key(x[i]), idx[i] = (uint32_t)i;
    radix_sort(key, idx, n);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && key[j] == key[i]) j++;
        double r = 0.5 * (double)(i + 1 + j); /* mean of ranks i+1 .. j */
        for (size_t k = i; k < j; k++) ranks[idx[k]] = r;
        i = j;
    }
    free(key);
    free(idx);
}

static double pearson_d(const double *a, const double *b, size_t n) {
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; i++) ma += a[i], mb += b[i];
    ma /= (double)n, mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        double da = a[i] - ma, db = b[i] - mb;
        sab += da * db, saa += da * da, sbb += db * db;
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
}

double synth_spearman(const float *a, const float *b, size_t n) {
    if (n < 2) return NAN;
    double *ra = xmalloc(n * sizeof *ra), *rb = xmalloc(n * sizeof *rb);
    synth_ranks(a, n, ra);
    synth_ranks(b, n, rb);
    double r = pearson_d(ra, rb, n);
    free(ra);
    free(rb);
    return r;
}

double synth_pearson(const float *a, const float *b, size_t n) {
    if (n < 2) return NAN;
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; i++) ma += a[i], mb += b[i];
    ma /= (double)n, mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        double da = a[i] - ma, db = b[i] - mb;
        sab += da * db, saa += da * da, sbb += db * db;
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
}

double synth_snr_db(const float *a, const float *b, size_t n) {
    double sa = 0, sd = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        sa += (double)a[i] * a[i], sd += d * d;
    }
    if (sd == 0) return sa > 0 ? INFINITY : NAN;
    /* DESIGN.md: 10*log10 of the ratio of norms (not of powers). */
    return 10 * log10(sqrt(sa) / sqrt(sd));
}
