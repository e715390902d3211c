/* Statistics of the analysis module against hand-worked examples, a
 * textbook data set, and values computed independently with python3 +
 * mpmath 1.3.0 (betainc(..., regularized=True) at 40 digits); numpy/scipy are
 * not available here. Each expected number says where it came from. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/analysis.h"
#include "test.h"

#define NEAR(t, got, want, tol, what)                                                   \
    CHECK(t, fabs((got) - (want)) <= (tol), "%s: got %.12g, want %.12g (tol %g)", what, \
          (double)(got), (double)(want), (double)(tol))

TEST(stats_mean_quantile) {
    double x[] = {4, 1, 3, 2};
    NEAR(t, stat_mean(x, 4), 2.5, 1e-15, "mean");
    CHECK(t, isnan(stat_mean(x, 0)), "mean of nothing is NaN");
    /* Hyndman-Fan type 7 (R's quantile default): h = (n-1)q = 0.75 -> 1 + 0.75. */
    NEAR(t, stat_quantile(x, 4, 0.25), 1.75, 1e-15, "q25");
    NEAR(t, stat_quantile(x, 4, 0.5), 2.5, 1e-15, "median");
    NEAR(t, stat_quantile(x, 4, 0.0), 1, 0, "min");
    NEAR(t, stat_quantile(x, 4, 1.0), 4, 0, "max");
    double one[] = {7};
    NEAR(t, stat_quantile(one, 1, 0.975), 7, 0, "single value");
}

TEST(stats_pearson_spearman_hand) {
    /* By hand: dx = -2..2, dy = -2,0,1,0,1; Sxy = 6, Sxx = 10, Syy = 6;
     * r = 6 / sqrt(60) = 0.774596669241483. */
    double x[] = {1, 2, 3, 4, 5}, y[] = {2, 4, 5, 4, 5};
    NEAR(t, stat_pearson(x, y, 5), 6 / sqrt(60.0), 1e-14, "pearson");
    /* Ties: ranks of y = 1, 2.5, 4.5, 2.5, 4.5; Sxy = 7, Sxx = 10, Syy = 9;
     * rho = 7 / sqrt(90) = 0.737864787372622. */
    NEAR(t, stat_spearman(x, y, 5), 7 / sqrt(90.0), 1e-14, "spearman with ties");
    double z[] = {10, 20, 20, 5, 20}, rz[5], want[] = {2, 4, 4, 1, 4};
    stat_average_ranks(z, 5, rz);
    for (int i = 0; i < 5; i++) NEAR(t, rz[i], want[i], 0, "average rank");
    /* Monotone but non-linear: Spearman 1, Pearson below 1. */
    double u[] = {1, 2, 3, 4}, v[] = {1, 8, 27, 64};
    NEAR(t, stat_spearman(u, v, 4), 1, 1e-15, "monotone");
    CHECK(t, stat_pearson(u, v, 4) < 0.99, "pearson of cubic");
    double c[] = {3, 3, 3, 3};
    CHECK(t, isnan(stat_pearson(u, c, 4)), "constant variable gives NaN");
    CHECK(t, isnan(stat_pearson(u, v, 1)), "n = 1 gives NaN");
    /* Shift/scale invariance and sign. */
    double w[] = {-2, -4, -5, -4, -5};
    NEAR(t, stat_pearson(x, w, 5), -6 / sqrt(60.0), 1e-14, "negated");
}

/* Both ranking paths (few distinct values: counting; many: sorting) against
 * the definition: rank = 1 + #{smaller} + (#{equal} - 1)/2. */
TEST(stats_average_ranks_paths) {
    Rng rng;
    rng_seed(&rng, 21);
    for (int distinct = 3; distinct <= 500; distinct *= 5) {
        int n = 700;
        double *x = malloc(sizeof(double) * n), *r = malloc(sizeof(double) * n);
        for (int i = 0; i < n; i++) x[i] = (double)rng_below(&rng, (uint64_t)distinct) / 7;
        stat_average_ranks(x, n, r);
        int bad = 0;
        for (int i = 0; i < n; i++) {
            int less = 0, eq = 0;
            for (int j = 0; j < n; j++) less += x[j] < x[i], eq += x[j] == x[i];
            bad += r[i] != 1 + less + (eq - 1) / 2.0;
        }
        CHECK(t, bad == 0, "%d distinct values: %d wrong ranks", distinct, bad);
        free(x);
        free(r);
    }
}

TEST(stats_spearman_brown) {
    NEAR(t, spearman_brown(0.5), 2.0 / 3.0, 1e-15, "r = .5");
    NEAR(t, spearman_brown(0.6), 0.75, 1e-15, "r = .6: 1.2/1.6");
    NEAR(t, spearman_brown(1), 1, 0, "r = 1");
    NEAR(t, spearman_brown(0), 0, 0, "r = 0");
}

TEST(stats_kappa_hand) {
    /* 10 trials, p1 = p2 = .6: n11 = 4, n10 = 2, n01 = 2, n00 = 2.
     * c_obs = .6, c_exp = .36 + .16 = .52, kappa = .08/.48 = 1/6;
     * bounds: c_obs in [|.6+.6-1|, 1-|.6-.6|] = [.2, 1] -> kappa in [-2/3, 1]. */
    unsigned char a[] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, b[] = {1, 1, 1, 1, 0, 0, 1, 1, 0, 0};
    ErrorConsistency e = error_consistency(a, b, 10);
    CHECK(t, e.n == 10, "n");
    NEAR(t, e.p1, 0.6, 1e-15, "p1");
    NEAR(t, e.c_obs, 0.6, 1e-15, "c_obs");
    NEAR(t, e.c_exp, 0.52, 1e-15, "c_exp");
    NEAR(t, e.kappa, 1.0 / 6, 1e-14, "kappa");
    NEAR(t, e.kappa_min, -2.0 / 3, 1e-14, "kappa_min");
    NEAR(t, e.kappa_max, 1, 1e-14, "kappa_max");
    /* p1 = .9, p2 = .5: n11 = 5, n10 = 4, n01 = 0, n00 = 1; c_obs = .6,
     * c_exp = .45 + .05 = .5, kappa = .2 = the maximum (1-.4-.5)/.5; min -.2. */
    e = error_consistency_counts(5, 4, 0, 1);
    NEAR(t, e.c_exp, 0.5, 1e-15, "c_exp 2");
    NEAR(t, e.kappa, 0.2, 1e-14, "kappa 2");
    NEAR(t, e.kappa_max, 0.2, 1e-14, "kappa_max 2");
    NEAR(t, e.kappa_min, -0.2, 1e-14, "kappa_min 2");
    /* Identical error patterns: kappa 1; opposite patterns at p = .5: -1. */
    NEAR(t, error_consistency(a, a, 10).kappa, 1, 1e-15, "identical");
    unsigned char na[10];
    for (int i = 0; i < 10; i++) na[i] = !a[i];
    e = error_consistency(a, na, 10);
    NEAR(t, e.kappa, (0 - 0.48) / 0.52, 1e-14, "opposite at .6/.4: c_exp = .48");
    /* c_exp = 1 (both always right, or both always wrong): NaN, not 1. */
    CHECK(t, isnan(error_consistency_counts(10, 0, 0, 0).kappa), "both always right");
    CHECK(t, isnan(error_consistency_counts(0, 0, 0, 7).kappa), "both always wrong");
    CHECK(t, isnan(error_consistency_counts(0, 0, 0, 7).kappa_max), "bounds NaN too");
    /* One observer always right: c_exp = p2 = c_obs, kappa 0, bounds collapse. */
    e = error_consistency_counts(5, 5, 0, 0);
    NEAR(t, e.kappa, 0, 1e-15, "one perfect observer");
    NEAR(t, e.kappa_min, 0, 1e-15, "collapsed min");
    NEAR(t, e.kappa_max, 0, 1e-15, "collapsed max");
    CHECK(t, isnan(error_consistency_counts(0, 0, 0, 0).kappa), "no trials");
}

TEST(stats_kappa_pairs_and_bootstrap) {
    /* Two pairs: the first is the 1/6 example above; the second has c_exp = 1
     * (undefined) and must not enter the mean. */
    unsigned char a[] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1};
    unsigned char b[] = {1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1};
    int off[] = {0, 10, 13}, n_def = -1;
    NEAR(t, kappa_pairs_mean(a, b, off, 2, &n_def), 1.0 / 6, 1e-14, "mean over pairs");
    CHECK(t, n_def == 1, "one defined pair, got %d", n_def);
    Rng rng;
    rng_seed(&rng, 7);
    int n_undef = -1;
    Ci pair_ci[2];
    Ci ci = kappa_pairs_bootstrap(a, b, off, 2, 2000, 0.95, &rng, &n_undef, pair_ci);
    CHECK(t, ci.lo < 1.0 / 6 && ci.hi > 1.0 / 6, "CI [%g, %g] covers 1/6", ci.lo, ci.hi);
    CHECK(t, ci.lo >= -1 && ci.hi <= 1, "CI inside [-1, 1]");
    CHECK(t, n_undef >= 0 && n_undef < 100, "a few undefined resamples at most: %d", n_undef);
    /* Pair 1 alone is the mean here: same interval; pair 2 never has a kappa. */
    CHECK(t, pair_ci[0].lo == ci.lo && pair_ci[0].hi == ci.hi, "pair CI [%g, %g]", pair_ci[0].lo,
          pair_ci[0].hi);
    CHECK(t, isnan(pair_ci[1].lo), "undefined pair has no CI");
    /* Identical observers: every defined resample gives 1. */
    rng_seed(&rng, 7);
    ci = kappa_pairs_bootstrap(a, a, off, 1, 500, 0.95, &rng, NULL, NULL);
    NEAR(t, ci.lo, 1, 1e-12, "identical lo");
    NEAR(t, ci.hi, 1, 1e-12, "identical hi");
}

/* Coverage of the percentile bootstrap CI on synthetic data: 400 data sets of
 * 30 normal values with mean 0.6; the 95% interval should cover 0.6 about
 * 94-95% of the time (percentile intervals run slightly narrow at n = 30).
 * Binomial SE of the rate at 400 sets is 1.1 points. */
TEST(stats_bootstrap_coverage) {
    Rng data, boot;
    rng_seed(&data, 11);
    rng_seed(&boot, 12);
    int covered = 0, sets = 400;
    double x[30];
    for (int s = 0; s < sets; s++) {
        for (int i = 0; i < 30; i++) x[i] = 0.6 + 0.2 * rng_normal(&data);
        Ci ci = bootstrap_mean_ci(x, 30, 1000, 0.95, &boot);
        covered += ci.lo <= 0.6 && 0.6 <= ci.hi;
    }
    double rate = (double)covered / sets;
    CHECK(t, rate > 0.90 && rate < 0.985, "coverage %.3f", rate);
    /* Width against the normal approximation 2 * 1.96 * sd / sqrt(n). */
    for (int i = 0; i < 30; i++) x[i] = (i % 2) ? 1 : 0; /* sd = .5085 (n-1) */
    Ci ci = bootstrap_mean_ci(x, 30, 4000, 0.95, &boot);
    double width = ci.hi - ci.lo, want = 2 * 1.96 * 0.5 / sqrt(30.0);
    CHECK(t, fabs(width - want) < 0.06, "width %.3f vs %.3f", width, want);
    CHECK(t, isnan(bootstrap_mean_ci(x, 0, 100, 0.95, &boot).lo), "empty gives NaN");
}

TEST(stats_incomplete_beta) {
    /* I_.5(2,3) = P(Binomial(4, .5) >= 2) = 11/16 by hand; the rest: mpmath. */
    NEAR(t, incbeta_reg(2, 3, 0.5), 0.6875, 1e-14, "I(2,3,.5)");
    NEAR(t, incbeta_reg(0.5, 0.5, 0.3), 0.36901011956554537504, 1e-13, "I(.5,.5,.3)");
    NEAR(t, incbeta_reg(5, 0.5, 0.99), 0.75715810910156239502, 1e-13, "I(5,.5,.99)");
    NEAR(t, incbeta_reg(100, 200, 0.3), 0.10884306564490975751, 1e-12, "I(100,200,.3)");
    NEAR(t, incbeta_reg(0.5, 1000, 0.001), 0.84275272573327599191, 1e-12, "I(.5,1000,.001)");
    NEAR(t, incbeta_reg(1500, 1500, 0.51), 0.86334316286760614409, 1e-10, "I(1500,1500,.51)");
    NEAR(t, incbeta_reg(2, 3, 0), 0, 0, "x = 0");
    NEAR(t, incbeta_reg(2, 3, 1), 1, 0, "x = 1");
    CHECK(t, isnan(incbeta_reg(-1, 3, 0.5)), "a <= 0 is NaN");
    /* Symmetry I_x(a,b) = 1 - I_{1-x}(b,a). */
    NEAR(t, incbeta_reg(3.5, 1.25, 0.2) + incbeta_reg(1.25, 3.5, 0.8), 1, 1e-14, "symmetry");
}

TEST(stats_f_distribution) {
    /* Upper tails from mpmath; F(3.10; 3, 20) and F(5.636; 5, 10) are the
     * printed 5% and 1% critical values of standard F tables. */
    struct {
        double f, d1, d2, p;
    } ref[] = {
        {3.10, 3, 20, 0.049924533045678780089}, {5.636, 5, 10, 0.010001958007050592812},
        {48.17, 2, 9, 1.5574760583799105703e-5}, {0.01, 1, 9, 0.9225364479566812075},
        {5.41, 2, 9, 0.028650015865689284101},  {1, 1, 1, 0.5},
        {2.5, 4, 30, 0.063476439798250794411},  {0.2, 10, 3, 0.97738607724890372157},
        {7.5, 1, 6, 0.033797787500090871922},
    };
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        double p = f_sf(ref[i].f, ref[i].d1, ref[i].d2);
        CHECK(t, fabs(p - ref[i].p) <= 1e-11 * (1 + ref[i].p / 1e-6),
              "P(F(%g,%g) > %g) = %.15g, want %.15g", ref[i].d1, ref[i].d2, ref[i].f, p,
              ref[i].p);
        NEAR(t, f_cdf(ref[i].f, ref[i].d1, ref[i].d2) + p, 1, 1e-14, "cdf + sf");
    }
    /* Closed form for d1 = 2: P(F > x) = (1 + 2x/d2)^(-d2/2); at x = 100,
     * d2 = 100 that is 3^-50 = 1.3929555690985e-24 (relative accuracy). */
    double p = f_sf(100, 2, 100);
    CHECK(t, fabs(p / pow(3, -50) - 1) < 1e-10, "tail %.6g vs 3^-50", p);
    /* F(1, 1) = t(1)^2, Cauchy: P(F > x) = 1 - (2/pi) atan(sqrt(x)). */
    NEAR(t, f_sf(3, 1, 1), 1 - 2 / M_PI * atan(sqrt(3.0)), 1e-14, "F(1,1) at 3 = 1/3");
    NEAR(t, f_sf(0, 2, 5), 1, 0, "F = 0");
    NEAR(t, f_sf(INFINITY, 2, 5), 0, 0, "F = inf");
    CHECK(t, isnan(f_sf(NAN, 2, 5)), "F = NaN");
}

/* Doncaster & Davey (2007) "Analysis of Variance and Covariance", model 6.3:
 * two-factor design with repeated measures on one factor (3 groups A x 4
 * subjects, 2 levels of B within subjects). Published table: SS A 905.27,
 * S(A) 84.56, B 0.19, B*A 167.65, B*S(A) 139.47, total 1297.13; F_A = 48.17
 * (p < .001), F_B = 0.01 (p = .915), F_BA = 5.41 (p = .029). The 10-digit
 * values come from a plain-python implementation with the textbook raw-score
 * formulas (sum y^2 - T^2/N ...) and mpmath p-values. */
static const double dd_y[12][2] = {
    {-3.8558, 5.9699}, {4.4076, 5.2141},  {-4.1752, 9.1467}, {1.4913, 5.8209},
    {9.4082, 6.9754},  {6.0296, 14.3012}, {15.3014, 10.4266}, {12.1900, 2.3707},
    {19.1834, 16.4482}, {18.3855, 11.6765}, {23.3385, 17.9727}, {21.9134, 15.1760},
};
static const int dd_group[12] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2};

TEST(stats_mixed_anova_textbook) {
    MixedAnova m;
    REQUIRE(t, mixed_anova(&dd_y[0][0], dd_group, 12, 2, 3, &m) == 0, "anova runs");
    NEAR(t, m.group.ss, 905.2671311775, 1e-7, "SS A");
    NEAR(t, m.subjects.ss, 84.5619456825, 1e-7, "SS S(A)");
    NEAR(t, m.level.ss, 0.1870900417, 1e-8, "SS B");
    NEAR(t, m.interaction.ss, 167.6472187758, 1e-7, "SS BA");
    NEAR(t, m.residual.ss, 139.4706196225, 1e-7, "SS B*S(A)");
    NEAR(t, m.ss_total, 1297.1340053, 1e-7, "SS total");
    NEAR(t, m.group.df, 2, 0, "df A");
    NEAR(t, m.subjects.df, 9, 0, "df S(A)");
    NEAR(t, m.level.df, 1, 0, "df B");
    NEAR(t, m.interaction.df, 2, 0, "df BA");
    NEAR(t, m.residual.df, 9, 0, "df B*S(A)");
    NEAR(t, m.group.F, 48.1741764268, 1e-8, "F A");
    NEAR(t, m.level.F, 0.0120728680, 1e-9, "F B");
    NEAR(t, m.interaction.F, 5.4091140237, 1e-8, "F BA");
    NEAR(t, m.group.p, 1.55692043469736e-5, 1e-12, "p A");
    NEAR(t, m.level.p, 0.91491826899128, 1e-10, "p B");
    NEAR(t, m.interaction.p, 0.0286615448917954, 1e-10, "p BA");
    NEAR(t, m.group.eta_p2, 0.9145691436437161, 1e-10, "eta A");
    NEAR(t, m.interaction.eta_p2, 0.5458726189600027, 1e-10, "eta BA");
    /* Published rounding. */
    NEAR(t, m.group.F, 48.17, 0.005, "published F A");
    NEAR(t, m.interaction.F, 5.41, 0.005, "published F BA");
    NEAR(t, m.level.p, 0.915, 0.0005, "published p B");
}

TEST(stats_mixed_anova_degenerate) {
    /* A noiseless observer: every subject identical within its group, so the
     * error terms are 0 and a real effect gives F = inf, p = 0. */
    double y[] = {1, 0.5, 1, 0.5, 0.9, 0.9, 0.9, 0.9};
    int g[] = {0, 0, 1, 1};
    MixedAnova m;
    REQUIRE(t, mixed_anova(y, g, 4, 2, 2, &m) == 0, "runs");
    CHECK(t, isinf(m.level.F) && m.level.p == 0, "F inf, p 0 (F=%g)", m.level.F);
    int bad[] = {0, 0, 0, 0};
    CHECK(t, mixed_anova(y, bad, 4, 2, 2, &m) != 0, "empty group rejected");
    CHECK(t, mixed_anova(y, g, 4, 1, 2, &m) != 0, "one level rejected");
}

TEST(stats_permutation_tests) {
    Rng rng;
    rng_seed(&rng, 3);
    /* Sign flips of five equal differences: |mean| stays 1 only for the 2 of
     * 32 all-same-sign patterns, so p = 1/16 = .0625 (SE .0024 at 10k). */
    double d[] = {1, 1, 1, 1, 1};
    double p = paired_permutation_p(d, 5, 10000, &rng);
    CHECK(t, fabs(p - 0.0625) < 0.008, "p = %g, want .0625", p);
    double z[] = {0, 0, 0};
    NEAR(t, paired_permutation_p(z, 3, 1000, &rng), 1, 0, "no difference: p = 1");
    double big[20];
    for (int i = 0; i < 20; i++) big[i] = 0.3 + 0.01 * i;
    NEAR(t, paired_permutation_p(big, 20, 10000, &rng), 1e-4, 1e-12, "floored at 1/N");
    /* The textbook data: permutation p-values near the F-test ones. */
    AnovaPermutation ap;
    mixed_anova_permutation(&dd_y[0][0], dd_group, 12, 2, 3, 2000, &rng, &ap);
    CHECK(t, ap.n_perm == 2000, "n_perm");
    CHECK(t, ap.p_group <= 0.002, "group p %g (F test 1.6e-5)", ap.p_group);
    CHECK(t, ap.p_level > 0.7, "level p %g (F test .915)", ap.p_level);
    CHECK(t, ap.p_interaction > 0.005 && ap.p_interaction < 0.1,
          "interaction p %g (F test .029)", ap.p_interaction);
}

/* Split-half reliability on synthetic data with a known answer: 200 units
 * with true values ~ N(0, 1), 20 subjects each observing every unit with
 * noise sd 2. A half of 10 subjects has mean noise variance 4/10 = .4, so the
 * half-half correlation is 1/1.4 and the Spearman-Brown reliability of all 20
 * is 1/(1 + 4/20) = .8333. */
TEST(stats_split_half_known) {
    int n_subj = 20, n_units = 200, n = n_subj * n_units;
    int *subj = malloc(sizeof(int) * n), *unit = malloc(sizeof(int) * n);
    double *v = malloc(sizeof(double) * n), truth[200];
    Rng rng;
    rng_seed(&rng, 5);
    for (int u = 0; u < n_units; u++) truth[u] = rng_normal(&rng);
    for (int s = 0, i = 0; s < n_subj; s++)
        for (int u = 0; u < n_units; u++, i++) {
            subj[i] = s;
            unit[i] = u;
            v[i] = truth[u] + 2 * rng_normal(&rng);
        }
    Reliability r, rs, r2, r2s;
    split_half_reliability(subj, unit, v, n, n_subj, n_units, 200, 9, &r, &rs);
    CHECK(t, r.n_splits == 200 && r.n_units == 200, "splits %d units %d", r.n_splits, r.n_units);
    CHECK(t, fabs(r.median - 1 / 1.2) < 0.05, "median reliability %.3f vs .833", r.median);
    CHECK(t, r.lo < r.median && r.median < r.hi && r.hi - r.lo < 0.15, "spread [%.3f, %.3f]",
          r.lo, r.hi);
    CHECK(t, fabs(rs.median - r.median) < 0.05, "spearman version %.3f", rs.median);
    /* Same seed, same splits: identical result, with or without the other. */
    split_half_reliability(subj, unit, v, n, n_subj, n_units, 200, 9, &r2, NULL);
    split_half_reliability(subj, unit, v, n, n_subj, n_units, 200, 9, NULL, &r2s);
    CHECK(t, r2.median == r.median && r2.lo == r.lo, "reproducible");
    CHECK(t, r2s.median == rs.median && r2s.hi == rs.hi, "reproducible (spearman)");
    /* Pure noise: reliability near 0. */
    for (int i = 0; i < n; i++) v[i] = rng_normal(&rng);
    split_half_reliability(subj, unit, v, n, n_subj, n_units, 100, 9, &r, NULL);
    CHECK(t, fabs(r.median) < 0.15, "noise reliability %.3f", r.median);
    free(subj);
    free(unit);
    free(v);
}
