/* Sorting, average ranks and correlations, shared by synthesis (metamer vs
 * natural activations: float32 vectors of up to ~10^6 values) and analysis
 * (accuracies and confidences: a few to a few thousand doubles).
 *
 * Both element types go through the same Pearson kernel and the same
 * Spearman = Pearson-of-average-ranks; only the ranking differs, because the
 * sizes do: floats are ranked by an O(n) radix sort on their bits, doubles by
 * counting when there are at most 64 distinct values (accuracies k/n of a
 * few listeners) and by an inlined quicksort otherwise. Every path gives
 * exactly the same ranks (means of integer ranks are exact in double). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* ------------------------------------------------------------- sorting */

/* Quicksort (median of three, insertion sort below 16) with the comparison
 * inlined: ranks and percentiles sort millions of values per report, and
 * qsort's indirect calls were a third of the run time. LESS(a, b) orders
 * elements; NaN never reaches these sorts. */
#define DEFINE_SORT(name, T, LESS)                                                  \
    static void name(T *v, size_t n) {                                              \
        while (n > 16) {                                                            \
            size_t m = n / 2;                                                       \
            T t;                                                                    \
            if (LESS(v[m], v[0])) t = v[m], v[m] = v[0], v[0] = t;                  \
            if (LESS(v[n - 1], v[0])) t = v[n - 1], v[n - 1] = v[0], v[0] = t;      \
            if (LESS(v[n - 1], v[m])) t = v[n - 1], v[n - 1] = v[m], v[m] = t;      \
            T pivot = v[m];                                                         \
            size_t i = 0, j = n - 1;                                                \
            for (;;) {                                                              \
                while (LESS(v[i], pivot)) i++;                                      \
                while (LESS(pivot, v[j])) j--;                                      \
                if (i >= j) break;                                                  \
                t = v[i], v[i] = v[j], v[j] = t;                                    \
                i++, j--;                                                           \
            }                                                                       \
            /* recurse into the smaller part, loop on the larger */                 \
            if (j + 1 < n - j - 1) {                                                \
                name(v, j + 1);                                                     \
                v += j + 1, n -= j + 1;                                             \
            } else {                                                                \
                name(v + j + 1, n - j - 1);                                         \
                n = j + 1;                                                          \
            }                                                                       \
        }                                                                           \
        for (size_t i = 1; i < n; i++) {                                            \
            T x = v[i];                                                             \
            size_t j = i;                                                           \
            for (; j > 0 && LESS(x, v[j - 1]); j--) v[j] = v[j - 1];                \
            v[j] = x;                                                               \
        }                                                                           \
    }

#define LESS_NUM(a, b) ((a) < (b))
DEFINE_SORT(quicksort_doubles, double, LESS_NUM)

void sort_doubles(double *v, size_t n) { quicksort_doubles(v, n); }

/* ------------------------------------------------------ ranks of doubles */

typedef struct {
    double v;
    size_t i;
} ValIdx;

#define LESS_VALIDX(a, b) ((a).v < (b).v || ((a).v == (b).v && (a).i < (b).i))
DEFINE_SORT(sort_validx, ValIdx, LESS_VALIDX)

/* Average ranks when x holds at most 64 distinct values: count each value
 * through a small hash instead of sorting. false (ranks untouched) when
 * there are more. */
static bool ranks_by_counting(const double *x, size_t n, double *ranks) {
    enum { SLOTS = 256, MAXU = 64 };
    double uniq[MAXU], rank_of[MAXU];
    size_t count[MAXU] = {0};
    int nu = 0;
    short slot[SLOTS];
    memset(slot, -1, sizeof slot);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            double v = x[i] == 0 ? 0 : x[i]; /* -0 and 0 are one value */
            uint64_t bits;
            memcpy(&bits, &v, sizeof bits);
            unsigned h = (unsigned)((bits * 0x9E3779B97F4A7C15ull) >> 56);
            while (slot[h] >= 0 && uniq[slot[h]] != v) h = (h + 1) % SLOTS;
            if (slot[h] < 0) {
                if (nu == MAXU) return false;
                slot[h] = (short)nu;
                uniq[nu++] = v;
            }
            if (pass == 0)
                count[slot[h]]++;
            else
                ranks[i] = rank_of[slot[h]];
        }
        if (pass == 0) { /* order the distinct values; ties share the mean rank */
            int idx[MAXU];
            for (int u = 0; u < nu; u++) idx[u] = u;
            for (int u = 1; u < nu; u++)
                for (int w = u; w > 0 && uniq[idx[w]] < uniq[idx[w - 1]]; w--) {
                    int t = idx[w];
                    idx[w] = idx[w - 1];
                    idx[w - 1] = t;
                }
            double below = 0;
            for (int u = 0; u < nu; u++) {
                rank_of[idx[u]] = below + ((double)count[idx[u]] + 1) / 2.0;
                below += (double)count[idx[u]];
            }
        }
    }
    return true;
}

void rank_average(const double *x, size_t n, double *ranks) {
    if (ranks_by_counting(x, n, ranks)) return;
    ValIdx *v = xmalloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = (ValIdx){x[i], i};
    sort_validx(v, n);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && v[j + 1].v == v[i].v) j++;
        double r = 0.5 * (double)(i + j) + 1; /* mean of ranks i+1 .. j+1 */
        for (size_t k = i; k <= j; k++) ranks[v[k].i] = r;
        i = j + 1;
    }
    free(v);
}

/* ------------------------------------------------------- ranks of floats */

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

void rank_average_f32(const float *x, size_t n, double *ranks) {
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

/* --------------------------------------------------------- correlations */

/* Two passes (means first): sums of squares of deviations do not cancel
 * catastrophically the way sum(x^2) - n mean^2 does. Sums run in double
 * whatever the element type. Rounding can put |r| an ulp past 1; it is
 * clamped. */
#define DEFINE_PEARSON(name, T)                                                     \
    double name(const T *x, const T *y, size_t n) {                                \
        if (n < 2) return NAN;                                                      \
        double mx = 0, my = 0;                                                      \
        for (size_t i = 0; i < n; i++) mx += x[i], my += y[i];                      \
        mx /= (double)n, my /= (double)n;                                           \
        double sxy = 0, sxx = 0, syy = 0;                                           \
        for (size_t i = 0; i < n; i++) {                                            \
            double dx = x[i] - mx, dy = y[i] - my;                                  \
            sxy += dx * dy, sxx += dx * dx, syy += dy * dy;                         \
        }                                                                           \
        if (sxx <= 0 || syy <= 0) return NAN;                                       \
        double r = sxy / sqrt(sxx * syy);                                           \
        return r > 1 ? 1 : r < -1 ? -1 : r;                                         \
    }

DEFINE_PEARSON(corr_pearson, double)
DEFINE_PEARSON(corr_pearson_f32, float)

/* Spearman rho: Pearson r of the average ranks. */
#define DEFINE_SPEARMAN(name, T, rank)                                              \
    double name(const T *x, const T *y, size_t n) {                                \
        if (n < 2) return NAN;                                                      \
        double *rx = xmalloc(2 * n * sizeof *rx), *ry = rx + n;                     \
        rank(x, n, rx);                                                             \
        rank(y, n, ry);                                                             \
        double r = corr_pearson(rx, ry, n);                                         \
        free(rx);                                                                   \
        return r;                                                                   \
    }

DEFINE_SPEARMAN(corr_spearman, double, rank_average)
DEFINE_SPEARMAN(corr_spearman_f32, float, rank_average_f32)
