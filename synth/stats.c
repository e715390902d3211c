/* Statistics between a metamer's and the natural clip's activations, and
 * between random pairs of natural clips (the null distribution). Ranks and
 * correlations are core's (radix-sorted float ranks, ties averaged). */
#include <math.h>

#include "synth.h"

void synth_ranks(const float *x, size_t n, double *ranks) { rank_average_f32(x, n, ranks); }

double synth_spearman(const float *a, const float *b, size_t n) {
    return corr_spearman_f32(a, b, n);
}

double synth_pearson(const float *a, const float *b, size_t n) {
    return corr_pearson_f32(a, b, n);
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
