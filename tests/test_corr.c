/* core: ranks and correlations shared by synthesis (floats) and analysis
 * (doubles); their hand-checked values are in test_stats.c and test_synth.c. */
#include <math.h>
#include <string.h>

#include "../core/core.h"
#include "test.h"

/* Floats and doubles share the Pearson kernel and give the same ranks. */
TEST(core_correlations_same_for_floats_and_doubles) {
    enum { N = 500 };
    float xf[N], yf[N];
    double xd[N], yd[N], rf[N], rd[N];
    Rng rng;
    rng_seed(&rng, 3);
    for (int i = 0; i < N; i++) {
        xf[i] = (float)(int)(rng_normal(&rng) * 8) / 4, yf[i] = xf[i] + (float)rng_normal(&rng);
        xd[i] = xf[i], yd[i] = yf[i];
    }
    rank_average_f32(xf, N, rf);
    rank_average(xd, N, rd);
    CHECK(t, !memcmp(rf, rd, sizeof rf), "ranks differ between the float and double paths");
    CHECK(t, corr_pearson_f32(xf, yf, N) == corr_pearson(xd, yd, N), "pearson differs");
    CHECK(t, corr_spearman_f32(xf, yf, N) == corr_spearman(xd, yd, N), "spearman differs");
    double up[] = {1, 2, 3}, down[] = {3, 2, 1};
    CHECK(t, corr_pearson(up, down, 3) == -1 && corr_spearman(up, down, 3) == -1, "reversed");
    CHECK(t, isnan(corr_pearson(up, down, 1)) && isnan(corr_spearman(up, up, 0)), "n < 2");
}
