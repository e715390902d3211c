/* analysis: human vs model error patterns, per clip and per stage.
 *
 * `metamers analyze` reads listening-experiment trial logs (BIDS TSV),
 * participants.tsv, per-stimulus model responses (`metamers eval` CSV) and
 * optionally metamers.csv, applies the exclusions, and writes CSV tables, SVG
 * figures, report.md and report.html (definitions in DESIGN.md, "Analysis
 * definitions"; input columns in analysis/README.md).
 *
 * The statistics are small pure functions declared here so they can be tested
 * against hand-worked and independently computed values. Every random
 * quantity (bootstrap, permutations, split halves) draws from a caller-seeded
 * Rng (core.h, xoshiro256**), so a report is reproducible from its seed. */
#ifndef ANALYSIS_H
#define ANALYSIS_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/core.h"

/* The subcommand (argv[0] = "analyze"). Errors print one line
 * "metamers analyze: ..." and return non-zero. */
int analysis_cmd_analyze(int argc, char **argv);

/* ------------------------------------------------------ descriptive stats */

/* NaN for n == 0. */
double stat_mean(const double *x, int n);
/* Sample quantile with linear interpolation between order statistics
 * (Hyndman-Fan type 7, R's default): sorted must be ascending. NaN if n == 0. */
double stat_quantile_sorted(const double *sorted, int n, double q);
/* Sorts x in place, then stat_quantile_sorted. */
double stat_quantile(double *x, int n, double q);
/* The analysis's int-count forms of core's corr_pearson, rank_average and
 * corr_spearman. Pearson correlation; NaN when n < 2 or either variable is
 * constant. */
double stat_pearson(const double *x, const double *y, int n);
/* 1-based ranks; ties get the average of the ranks they span. */
void stat_average_ranks(const double *x, int n, double *ranks);
/* Pearson correlation of the average ranks. */
double stat_spearman(const double *x, const double *y, int n);
/* Reliability of the full set from the correlation r of two halves:
 * 2r / (1 + r). Already a variance-like quantity: never square it again. */
double spearman_brown(double r);

/* -------------------------------------------------------------- bootstrap */

typedef struct {
    double lo, hi;
} Ci;

/* Percentile bootstrap CI of the mean of x (n values resampled with
 * replacement, `resamples` times; level e.g. 0.95). {NaN, NaN} if n == 0. */
Ci bootstrap_mean_ci(const double *x, int n, int resamples, double level, Rng *rng);

/* ------------------------------------------------ error consistency (kappa) */

/* Geirhos et al. 2020 error consistency of two observers on the same trials. */
typedef struct {
    int n;
    double p1, p2;       /* accuracies */
    double c_obs, c_exp; /* observed and expected (independent) agreement */
    double kappa;        /* (c_obs - c_exp) / (1 - c_exp); NaN when c_exp == 1 */
    double kappa_min, kappa_max; /* reachable at these accuracies; NaN when c_exp == 1 */
} ErrorConsistency;

/* From the 2x2 counts: n11 both right, n10 first right only, n01, n00 both wrong. */
ErrorConsistency error_consistency_counts(int n11, int n10, int n01, int n00);
/* a[i], b[i]: correctness (0/1) of the two observers on trial i. */
ErrorConsistency error_consistency(const unsigned char *a, const unsigned char *b, int n);

/* Several observer pairs: pair k's trials are a[off[k] .. off[k+1]) and the
 * same indices of b. Mean kappa over pairs whose kappa is defined (NaN if
 * none); *n_defined (may be NULL) receives their number. */
double kappa_pairs_mean(const unsigned char *a, const unsigned char *b, const int *off,
                        int n_pairs, int *n_defined);
/* Percentile bootstrap CI of kappa_pairs_mean: each resample draws every
 * pair's trials with replacement, the same indices for both observers.
 * Resamples where no kappa is defined are skipped (counted in *n_undefined,
 * may be NULL). pair_ci (n_pairs entries, may be NULL) receives each pair's
 * own percentile CI from the same resamples. */
Ci kappa_pairs_bootstrap(const unsigned char *a, const unsigned char *b, const int *off,
                         int n_pairs, int resamples, double level, Rng *rng, int *n_undefined,
                         Ci *pair_ci);

/* ------------------------------------------------- split-half reliability */

typedef struct {
    double median, lo, hi; /* Spearman-Brown reliability over splits: median, 2.5 and
                              97.5 percentiles ("spread") */
    int n_splits;          /* splits where the correlation was defined */
    int n_units;           /* units with at least one observation */
} Reliability;

/* Observations i = 0..n-1: subject subj[i] in [0, n_subj), unit unit[i] in
 * [0, n_units) (a clip, a condition cell, ...), value v[i]. `splits` times,
 * shuffles the subjects into two halves (floor(n_subj/2) and the rest), takes
 * each half's mean per unit over units observed in both halves, correlates the
 * halves and applies Spearman-Brown: Pearson into *pearson, Spearman into
 * *spearman (either may be NULL), from the same splits. The split sequence
 * depends only on (seed, n_subj), so two calls with the same seed split
 * subjects identically (human and model reliabilities). */
void split_half_reliability(const int *subj, const int *unit, const double *v, int n, int n_subj,
                            int n_units, int splits, uint64_t seed, Reliability *pearson,
                            Reliability *spearman);

/* ------------------------------------------------ F distribution, ANOVA */

/* Regularized incomplete beta I_x(a, b) (continued fraction, Lentz). */
double incbeta_reg(double a, double b, double x);
/* P(F <= f) and P(F > f) for F(d1, d2). */
double f_cdf(double f, double d1, double d2);
double f_sf(double f, double d1, double d2);

typedef struct {
    double ss, df, ms, F, p, eta_p2; /* F, p, partial eta^2 = ss/(ss+ss_error): effects only */
} AnovaTerm;

/* Mixed (split-plot) ANOVA: groups between subjects (observer: human/model),
 * levels within subjects (stage). */
typedef struct {
    AnovaTerm group;       /* between: error term = subjects */
    AnovaTerm subjects;    /* subjects within groups */
    AnovaTerm level;       /* within: error term = residual */
    AnovaTerm interaction; /* group x level: error term = residual */
    AnovaTerm residual;    /* level x subjects within groups */
    double ss_total;
} MixedAnova;

/* y: n_subj x n_levels, row-major, complete. group[s] in [0, n_groups), every
 * group non-empty. Sequential sums of squares (exact for equal group sizes,
 * which is how this tool calls it). -1 on degenerate shapes. */
int mixed_anova(const double *y, const int *group, int n_subj, int n_levels, int n_groups,
                MixedAnova *out);

typedef struct {
    double p_group, p_level, p_interaction;
    int n_perm;
} AnovaPermutation;

/* Permutation p-values for the mixed ANOVA's F statistics, n_perm
 * permutations, p = max(#{F_perm >= F_obs}, 1) / n_perm (floored at 1/N).
 * Group: group labels shuffled across subjects. Level: level order shuffled
 * within each subject. Interaction: both at once. */
void mixed_anova_permutation(const double *y, const int *group, int n_subj, int n_levels,
                             int n_groups, int n_perm, Rng *rng, AnovaPermutation *out);

/* Paired (sign-flip) permutation test of mean(d) == 0, two-sided: flipping
 * the sign of d[i] swaps the human and model labels of pair i.
 * p = max(#{|mean_perm| >= |mean_obs|}, 1) / n_perm. */
double paired_permutation_p(const double *d, int n, int n_perm, Rng *rng);

/* ------------------------------------------------------------ the command */

typedef struct {
    const char **trial_globs; /* --trials (repeatable) */
    int n_trial_globs;
    const char *participants;    /* --participants */
    const char *model_responses; /* --model-responses */
    const char *metamers;        /* --metamers (optional) */
    const char *out;             /* --out directory */
    const char *stage_order;     /* --stage-order a,b,c (optional) */
    double catch_threshold;      /* exclude below this catch-trial accuracy */
    double low_accuracy;         /* flag kappa where mean human accuracy < this */
    uint64_t seed;
    int bootstrap, permutations, splits;
    int min_shared; /* fewest common trials for a human-human kappa pair */
} AnalysisOptions;

void analysis_options_default(AnalysisOptions *opt);
/* The whole analysis: load, exclude, compute, write the report into opt->out;
 * prints a two-line summary on stdout. */
int analysis_run(const AnalysisOptions *opt, Error *err);

#endif
