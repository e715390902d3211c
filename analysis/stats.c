/* Descriptive statistics, bootstrap CIs, error consistency and split-half
 * reliability (sorting, ranks and correlations are core's). Pure functions:
 * inputs in, numbers out; randomness only through the Rng passed in. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ana_internal.h"

double stat_mean(const double *x, int n) {
    if (n <= 0) return NAN;
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / n;
}

/* Uniform integers in [0, n), n < 2^32, for resampling loops that draw
 * millions of indices: Lemire's multiply-shift with rejection (unbiased) on
 * 32-bit halves of each rng_next, so no division in the common case and two
 * draws per generator step. */
typedef struct {
    Rng *rng;
    uint64_t bits;
    int left;
} Draw32;

static inline uint32_t draw_below(Draw32 *d, uint32_t n) {
    for (;;) {
        if (!d->left) d->bits = rng_next(d->rng), d->left = 2;
        uint32_t x = (uint32_t)d->bits;
        d->bits >>= 32;
        d->left--;
        uint64_t m = (uint64_t)x * n;
        uint32_t l = (uint32_t)m;
        if (l >= n || l >= (uint32_t)(0u - n) % n) return (uint32_t)(m >> 32);
    }
}

double stat_quantile_sorted(const double *s, int n, double q) {
    if (n <= 0) return NAN;
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo < 0) return s[0];
    if (lo >= n - 1) return s[n - 1];
    return s[lo] + (h - lo) * (s[lo + 1] - s[lo]);
}

double stat_quantile(double *x, int n, double q) {
    sort_doubles(x, (size_t)(n > 0 ? n : 0));
    return stat_quantile_sorted(x, n, q);
}

double stat_pearson(const double *x, const double *y, int n) {
    return corr_pearson(x, y, n > 0 ? (size_t)n : 0);
}

void stat_average_ranks(const double *x, int n, double *ranks) {
    rank_average(x, n > 0 ? (size_t)n : 0, ranks);
}

double stat_spearman(const double *x, const double *y, int n) {
    return corr_spearman(x, y, n > 0 ? (size_t)n : 0);
}

double spearman_brown(double r) { return 2 * r / (1 + r); }

/* ------------------------------------------------------------ bootstrap */

/* Percentile interval of the finite values of v (sorted in place). */
static Ci percentile_ci(double *v, int n, double level) {
    if (n <= 0) return (Ci){NAN, NAN};
    sort_doubles(v, (size_t)n);
    double a = (1 - level) / 2;
    return (Ci){stat_quantile_sorted(v, n, a), stat_quantile_sorted(v, n, 1 - a)};
}

Ci bootstrap_mean_ci(const double *x, int n, int resamples, double level, Rng *rng) {
    if (n <= 0 || resamples <= 0) return (Ci){NAN, NAN};
    double *means = xmalloc((size_t)resamples * sizeof *means);
    Draw32 d = {rng, 0, 0};
    for (int b = 0; b < resamples; b++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += x[draw_below(&d, (uint32_t)n)];
        means[b] = s / n;
    }
    Ci ci = percentile_ci(means, resamples, level);
    free(means);
    return ci;
}

/* ---------------------------------------------------- error consistency */

ErrorConsistency error_consistency_counts(int n11, int n10, int n01, int n00) {
    ErrorConsistency e = {.n = n11 + n10 + n01 + n00};
    if (e.n == 0) {
        e.p1 = e.p2 = e.c_obs = e.c_exp = e.kappa = e.kappa_min = e.kappa_max = NAN;
        return e;
    }
    double n = e.n;
    e.p1 = (n11 + n10) / n;
    e.p2 = (n11 + n01) / n;
    e.c_obs = (n11 + n00) / n;
    e.c_exp = e.p1 * e.p2 + (1 - e.p1) * (1 - e.p2);
    /* c_exp == 1 exactly when both observers are always right or always
     * wrong: agreement is then forced, and kappa is 0/0. DESIGN.md: NaN (not
     * model-vs-human's 1, which Klein et al. 2025 show changes rankings). */
    if (e.c_exp >= 1) {
        e.kappa = e.kappa_min = e.kappa_max = NAN;
        return e;
    }
    /* With P(both right) = a, c_obs = 1 - p1 - p2 + 2a and a ranges over
     * [max(0, p1+p2-1), min(p1, p2)], so c_obs spans [|p1+p2-1|, 1-|p1-p2|]. */
    double d = 1 - e.c_exp;
    e.kappa = (e.c_obs - e.c_exp) / d;
    e.kappa_min = (fabs(e.p1 + e.p2 - 1) - e.c_exp) / d;
    e.kappa_max = (1 - fabs(e.p1 - e.p2) - e.c_exp) / d;
    return e;
}

ErrorConsistency error_consistency(const unsigned char *a, const unsigned char *b, int n) {
    int c[4] = {0}; /* index 2*a + b: 3 = both right, 0 = both wrong */
    for (int i = 0; i < n; i++) c[2 * (a[i] != 0) + (b[i] != 0)]++;
    return error_consistency_counts(c[3], c[2], c[1], c[0]);
}

double kappa_pairs_mean(const unsigned char *a, const unsigned char *b, const int *off,
                        int n_pairs, int *n_defined) {
    double s = 0;
    int k = 0;
    for (int p = 0; p < n_pairs; p++) {
        ErrorConsistency e = error_consistency(a + off[p], b + off[p], off[p + 1] - off[p]);
        if (!isnan(e.kappa)) s += e.kappa, k++;
    }
    if (n_defined) *n_defined = k;
    return k ? s / k : NAN;
}

Ci kappa_pairs_bootstrap(const unsigned char *a, const unsigned char *b, const int *off,
                         int n_pairs, int resamples, double level, Rng *rng, int *n_undefined,
                         Ci *pair_ci) {
    double *stat = xmalloc((size_t)(resamples > 0 ? resamples : 1) * sizeof *stat);
    /* Per-pair kappas of every resample, pair-major, for the pairs' own CIs. */
    double *pk = pair_ci ? xmalloc((size_t)n_pairs * (resamples > 0 ? resamples : 1) * sizeof *pk)
                         : NULL;
    int *pk_n = pair_ci ? xcalloc((size_t)n_pairs + 1, sizeof *pk_n) : NULL;
    /* Kappa depends on a pair's trials only through its 2x2 counts, so a
     * resample (same indices for both observers) is a draw of n trial
     * indices mapped to their category: with the trials ordered by category
     * that is three comparisons against cumulative counts. */
    int *cum = xmalloc(3 * (size_t)(n_pairs > 0 ? n_pairs : 1) * sizeof *cum);
    for (int p = 0; p < n_pairs; p++) {
        int c[4] = {0};
        for (int i = off[p]; i < off[p + 1]; i++) c[2 * (a[i] != 0) + (b[i] != 0)]++;
        cum[3 * p] = c[0], cum[3 * p + 1] = c[0] + c[1], cum[3 * p + 2] = c[0] + c[1] + c[2];
    }
    Draw32 d = {rng, 0, 0};
    int m = 0, undefined = 0;
    for (int r = 0; r < resamples; r++) {
        double s = 0;
        int k = 0;
        for (int p = 0; p < n_pairs; p++) {
            int n = off[p + 1] - off[p], c[4] = {0};
            if (n == 0) continue;
            const int *t = cum + 3 * p;
            for (int i = 0; i < n; i++) {
                int u = (int)draw_below(&d, (uint32_t)n);
                c[(u >= t[0]) + (u >= t[1]) + (u >= t[2])]++;
            }
            ErrorConsistency e = error_consistency_counts(c[3], c[2], c[1], c[0]);
            if (isnan(e.kappa)) continue;
            s += e.kappa, k++;
            if (pk) pk[(size_t)p * resamples + pk_n[p]++] = e.kappa;
        }
        if (k)
            stat[m++] = s / k;
        else
            undefined++;
    }
    Ci ci = percentile_ci(stat, m, level);
    for (int p = 0; pair_ci && p < n_pairs; p++)
        pair_ci[p] = percentile_ci(pk + (size_t)p * resamples, pk_n[p], level);
    free(stat);
    free(cum);
    free(pk);
    free(pk_n);
    if (n_undefined) *n_undefined = undefined;
    return ci;
}

/* ---------------------------------------------- split-half reliability */

static void summarize_splits(double *r_sb, int m, Reliability *rel) {
    rel->n_splits = m;
    rel->median = rel->lo = rel->hi = NAN;
    if (m > 0) {
        sort_doubles(r_sb, (size_t)m);
        rel->median = stat_quantile_sorted(r_sb, m, 0.5);
        rel->lo = stat_quantile_sorted(r_sb, m, 0.025);
        rel->hi = stat_quantile_sorted(r_sb, m, 0.975);
    }
}

void split_half_reliability(const int *subj, const int *unit, const double *v, int n, int n_subj,
                            int n_units, int splits, uint64_t seed, Reliability *pearson,
                            Reliability *spearman) {
    Reliability none = {NAN, NAN, NAN, 0, 0};
    if (pearson) *pearson = none;
    if (spearman) *spearman = none;
    if (n_units <= 0 || n_subj < 2) return;
    int *order = xmalloc((size_t)n_subj * sizeof *order), units_seen = 0;
    unsigned char *half = xmalloc((size_t)n_subj);
    double *sum = xcalloc(4 * (size_t)n_units, sizeof *sum); /* sum0 sum1 cnt0 cnt1 */
    double *x = xmalloc(2 * (size_t)n_units * sizeof *x), *y = x + n_units;
    double *rp = xmalloc(2 * (size_t)(splits > 0 ? splits : 1) * sizeof *rp), *rs = rp + splits;
    for (int i = 0; i < n; i++) sum[unit[i]] = 1;
    for (int u = 0; u < n_units; u++) units_seen += sum[u] > 0;
    Rng rng;
    rng_seed(&rng, seed);
    int mp = 0, ms = 0;
    for (int s = 0; s < splits; s++) {
        for (int i = 0; i < n_subj; i++) order[i] = i;
        for (int i = n_subj - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)rng_below(&rng, (uint64_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < n_subj; i++) half[order[i]] = i >= n_subj / 2;
        memset(sum, 0, 4 * (size_t)n_units * sizeof *sum);
        for (int i = 0; i < n; i++) {
            int h = half[subj[i]];
            sum[(size_t)h * n_units + unit[i]] += v[i];
            sum[(size_t)(2 + h) * n_units + unit[i]] += 1;
        }
        int k = 0;
        for (int u = 0; u < n_units; u++) {
            double c0 = sum[2 * (size_t)n_units + u], c1 = sum[3 * (size_t)n_units + u];
            if (c0 > 0 && c1 > 0) {
                x[k] = sum[u] / c0;
                y[k] = sum[(size_t)n_units + u] / c1;
                k++;
            }
        }
        if (pearson) {
            double r = stat_pearson(x, y, k);
            if (!isnan(r)) rp[mp++] = spearman_brown(r);
        }
        if (spearman) {
            double r = stat_spearman(x, y, k);
            if (!isnan(r)) rs[ms++] = spearman_brown(r);
        }
    }
    if (pearson) summarize_splits(rp, mp, pearson), pearson->n_units = units_seen;
    if (spearman) summarize_splits(rs, ms, spearman), spearman->n_units = units_seen;
    free(order);
    free(half);
    free(sum);
    free(x);
    free(rp);
}
