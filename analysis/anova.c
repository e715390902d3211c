/* F distribution (through the regularized incomplete beta function), the
 * mixed observer x stage ANOVA of Feather et al. 2023, and the permutation
 * tests that back its p-values. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ana_internal.h"

/* Continued fraction for I_x(a, b) (Numerical Recipes' betacf, modified
 * Lentz): converges fast for x < (a + 1) / (a + b + 2); the caller uses the
 * symmetry I_x(a, b) = 1 - I_{1-x}(b, a) otherwise. */
static double betacf(double a, double b, double x) {
    const double tiny = 1e-300, eps = 1e-16;
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 100000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < eps) break;
    }
    return h;
}

double incbeta_reg(double a, double b, double x) {
    if (isnan(a) || isnan(b) || isnan(x) || a <= 0 || b <= 0) return NAN;
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    /* log of x^a (1-x)^b / B(a, b), with log1p for accuracy near x = 0. */
    double lfront = a * log(x) + b * log1p(-x) + lgamma(a + b) - lgamma(a) - lgamma(b);
    if (x < (a + 1) / (a + b + 2)) return exp(lfront) * betacf(a, b, x) / a;
    return 1 - exp(lfront) * betacf(b, a, 1 - x) / b;
}

double f_cdf(double f, double d1, double d2) {
    if (isnan(f) || d1 <= 0 || d2 <= 0) return NAN;
    if (f <= 0) return 0;
    if (isinf(f)) return 1;
    /* Whichever argument is below 1/2 keeps the beta tail accurate. */
    double x = d1 * f / (d1 * f + d2);
    if (x < 0.5) return incbeta_reg(d1 / 2, d2 / 2, x);
    return 1 - incbeta_reg(d2 / 2, d1 / 2, d2 / (d2 + d1 * f));
}

double f_sf(double f, double d1, double d2) {
    if (isnan(f) || d1 <= 0 || d2 <= 0) return NAN;
    if (f <= 0) return 1;
    if (isinf(f)) return 0;
    double x = d2 / (d2 + d1 * f);
    if (x < 0.5) return incbeta_reg(d2 / 2, d1 / 2, x);
    return 1 - incbeta_reg(d1 / 2, d2 / 2, d1 * f / (d1 * f + d2));
}

/* ---------------------------------------------------------- mixed ANOVA */

static void finish_term(AnovaTerm *t, const AnovaTerm *error) {
    t->ms = t->df > 0 ? t->ss / t->df : NAN;
    if (!error) {
        t->F = t->p = t->eta_p2 = NAN;
        return;
    }
    double ems = error->df > 0 ? error->ss / error->df : NAN;
    /* A zero error term with a non-zero effect is an infinite F (p = 0): the
     * model observer can be noiseless. 0/0 stays NaN. */
    if (ems > 0)
        t->F = t->ms / ems;
    else
        t->F = t->ss > 0 ? INFINITY : NAN;
    t->p = f_sf(t->F, t->df, error->df);
    t->eta_p2 = t->ss + error->ss > 0 ? t->ss / (t->ss + error->ss) : NAN;
}

int mixed_anova(const double *y, const int *group, int n_subj, int n_levels, int n_groups,
                MixedAnova *out) {
    memset(out, 0, sizeof *out);
    if (n_levels < 2 || n_groups < 1 || n_subj <= n_groups) return -1;
    int a = n_groups, b = n_levels, N = n_subj;
    double *ng = xcalloc((size_t)a, sizeof *ng), *gm = xcalloc((size_t)a, sizeof *gm);
    double *cm = xcalloc((size_t)a * b, sizeof *cm), *lm = xcalloc((size_t)b, sizeof *lm);
    double *sm = xcalloc((size_t)N, sizeof *sm), G = 0;
    int rc = 0;
    for (int s = 0; s < N; s++) {
        int g = group[s];
        if (g < 0 || g >= a) {
            rc = -1;
            goto done;
        }
        ng[g]++;
        for (int j = 0; j < b; j++) {
            double v = y[(size_t)s * b + j];
            sm[s] += v / b;
            cm[(size_t)g * b + j] += v;
            lm[j] += v / N;
            G += v / ((double)N * b);
        }
    }
    for (int g = 0; g < a; g++) {
        if (ng[g] == 0) {
            rc = -1;
            goto done;
        }
        for (int j = 0; j < b; j++) {
            cm[(size_t)g * b + j] /= ng[g];
            gm[g] += cm[(size_t)g * b + j] / b;
        }
    }
    /* Each sum of squares is computed from its own deviations (not as a
     * difference of totals), so they stay accurate and non-negative. */
    for (int g = 0; g < a; g++) {
        out->group.ss += b * ng[g] * (gm[g] - G) * (gm[g] - G);
        for (int j = 0; j < b; j++) {
            double d = cm[(size_t)g * b + j] - gm[g] - lm[j] + G;
            out->interaction.ss += ng[g] * d * d;
        }
    }
    for (int j = 0; j < b; j++) out->level.ss += N * (lm[j] - G) * (lm[j] - G);
    for (int s = 0; s < N; s++) {
        int g = group[s];
        out->subjects.ss += b * (sm[s] - gm[g]) * (sm[s] - gm[g]);
        for (int j = 0; j < b; j++) {
            double v = y[(size_t)s * b + j];
            double d = v - sm[s] - cm[(size_t)g * b + j] + gm[g];
            out->residual.ss += d * d;
            out->ss_total += (v - G) * (v - G);
        }
    }
    out->group.df = a - 1;
    out->subjects.df = N - a;
    out->level.df = b - 1;
    out->interaction.df = (double)(a - 1) * (b - 1);
    out->residual.df = (double)(N - a) * (b - 1);
    finish_term(&out->subjects, NULL);
    finish_term(&out->residual, NULL);
    if (a > 1) {
        finish_term(&out->group, &out->subjects);
        finish_term(&out->interaction, &out->residual);
    } else {
        out->group.F = out->group.p = out->group.eta_p2 = out->group.ms = NAN;
        out->interaction.F = out->interaction.p = out->interaction.eta_p2 = NAN;
        out->interaction.ms = NAN;
    }
    finish_term(&out->level, &out->residual);
done:
    free(ng);
    free(gm);
    free(cm);
    free(lm);
    free(sm);
    return rc;
}

/* ------------------------------------------------------ permutation tests */

static void shuffle_ints(int *v, int n, Rng *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(rng, (uint64_t)i + 1), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static void shuffle_doubles(double *v, int n, Rng *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(rng, (uint64_t)i + 1);
        double t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* At least as extreme, with a relative tolerance: permutations that merely
 * relabel the data reproduce F_obs up to rounding and must count. */
static bool as_extreme(double f, double f_obs) {
    return f >= f_obs - 1e-12 * fabs(f_obs) || (isinf(f) && isinf(f_obs));
}

static double perm_p(int hits, int n_perm, double f_obs) {
    if (isnan(f_obs) || n_perm <= 0) return NAN;
    return (double)(hits > 0 ? hits : 1) / n_perm;
}

void mixed_anova_permutation(const double *y, const int *group, int n_subj, int n_levels,
                             int n_groups, int n_perm, Rng *rng, AnovaPermutation *out) {
    *out = (AnovaPermutation){NAN, NAN, NAN, n_perm};
    MixedAnova obs, perm;
    if (mixed_anova(y, group, n_subj, n_levels, n_groups, &obs) != 0) return;
    size_t n = (size_t)n_subj * n_levels;
    double *yp = xmalloc(n * sizeof *yp);
    int *gp = xmalloc((size_t)n_subj * sizeof *gp);
    int hits_g = 0, hits_l = 0, hits_i = 0;
    for (int k = 0; k < n_perm; k++) {
        /* main effect of group: relabel subjects */
        memcpy(gp, group, (size_t)n_subj * sizeof *gp);
        shuffle_ints(gp, n_subj, rng);
        mixed_anova(y, gp, n_subj, n_levels, n_groups, &perm);
        hits_g += as_extreme(perm.group.F, obs.group.F);
        /* main effect of level: shuffle the level order within each subject */
        memcpy(yp, y, n * sizeof *yp);
        for (int s = 0; s < n_subj; s++) shuffle_doubles(yp + (size_t)s * n_levels, n_levels, rng);
        mixed_anova(yp, group, n_subj, n_levels, n_groups, &perm);
        hits_l += as_extreme(perm.level.F, obs.level.F);
        /* interaction: both at once (DESIGN.md) */
        mixed_anova(yp, gp, n_subj, n_levels, n_groups, &perm);
        hits_i += as_extreme(perm.interaction.F, obs.interaction.F);
    }
    out->p_group = perm_p(hits_g, n_perm, obs.group.F);
    out->p_level = perm_p(hits_l, n_perm, obs.level.F);
    out->p_interaction = perm_p(hits_i, n_perm, obs.interaction.F);
    free(yp);
    free(gp);
}

double paired_permutation_p(const double *d, int n, int n_perm, Rng *rng) {
    if (n <= 0 || n_perm <= 0) return NAN;
    double obs = fabs(stat_mean(d, n));
    int hits = 0;
    for (int k = 0; k < n_perm; k++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += (rng_next(rng) >> 63) ? d[i] : -d[i];
        hits += fabs(s / n) >= obs - 1e-12 * obs;
    }
    return (double)(hits > 0 ? hits : 1) / n_perm;
}
