/* Metamer synthesis without synthesizing: the similarity statistics and
 * the success criterion, job lists, shards and stage sets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "../stimuli/stimuli.h"
#include "../synth/synth.h"
#include "synth_fixture.h"
#include "test.h"

/* ---------------------------------------------------------- statistics */

TEST(synth_stats_hand_checked) {
    /* Ties get average ranks: a -> 1, 2.5, 2.5, 4. By hand (scipy agrees):
     * rho = 4.5 / sqrt(4.5 * 5) = 0.9486833. */
    float a[] = {1, 2, 2, 3}, b[] = {1, 3, 2, 4};
    CHECK(t, fabs(synth_spearman(a, b, 4) - 0.94868329805) < 1e-9, "spearman with ties %.10f",
          synth_spearman(a, b, 4));
    float c[] = {1, 2, 3, 4}, d[] = {2, 4, 5, 9};
    /* sab = 11, saa = 5, sbb = 26: r = 11 / sqrt(130). */
    CHECK(t, fabs(synth_pearson(c, d, 4) - 11 / sqrt(130.0)) < 1e-12, "pearson %.12f", synth_pearson(c, d, 4));
    float e[] = {3, 4}, f[] = {3, 3};
    /* ||a|| = 5, ||a - b|| = 1: 10 log10(5). */
    CHECK(t, fabs(synth_snr_db(e, f, 2) - 6.98970004336) < 1e-9, "snr %.10f", synth_snr_db(e, f, 2));
    CHECK(t, isinf(synth_snr_db(e, e, 2)), "identical: snr should be +inf");
    float g[] = {0.5f, -0.0f, 0.0f, -2, 0.5f, -1e30f, 7};
    double r[7], want[7] = {5.5, 3.5, 3.5, 2, 5.5, 1, 7};
    synth_ranks(g, 7, r);
    for (int i = 0; i < 7; i++) CHECK(t, r[i] == want[i], "rank %d: %g, want %g (-0 and +0 tie)", i, r[i], want[i]);
    float h[] = {1, 1, 1};
    CHECK(t, isnan(synth_spearman(h, a, 3)) && isnan(synth_pearson(h, a, 3)), "constant side: NaN");
    /* Reversed order: rho = r = -1. */
    float u[] = {1, 2, 3, 4, 5}, v[] = {10, 8, 6, 4, 2};
    CHECK(t, fabs(synth_spearman(u, v, 5) + 1) < 1e-12 && fabs(synth_pearson(u, v, 5) + 1) < 1e-12, "reversed");
}

/* The radix ranks against a direct O(n^2) count on data full of ties. */
TEST(synth_ranks_match_direct_count) {
    enum { N = 3000 };
    static float x[N];
    static double r[N];
    Rng rng;
    rng_seed(&rng, 5);
    for (int i = 0; i < N; i++) x[i] = rng_uniform(&rng) < 0.3 ? 0.0f : (float)((int)(rng_normal(&rng) * 20) / 4.0);
    synth_ranks(x, N, r);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int less = 0, equal = 0;
        for (int j = 0; j < N; j++) less += x[j] < x[i], equal += x[j] == x[i];
        bad += r[i] != less + (equal + 1) / 2.0;
    }
    CHECK(t, bad == 0, "%d ranks differ from the direct count", bad);
}

/* The success criterion, case by case, including the ceiling rule for a
 * correlation whose null maximum is already 1. */
TEST(synth_judge_criteria) {
    NullStage ns = {.max_spearman = 0.5, .max_pearson = 0.6, .max_snr_db = 3};
    MetamerResult m = {.spearman = 0.9, .pearson = 0.9, .snr_db = 10, .pred_natural = 2, .pred_metamer = 2};
    char v[700];
    CHECK(t, metamer_judge(&m, &ns, "rock", "rock", v, sizeof v) && !strcmp(v, "pass"), "%s", v);
    m.spearman = 0.5; /* equal is not above */
    CHECK(t, !metamer_judge(&m, &ns, "rock", "rock", v, sizeof v) && strstr(v, "spearman 0.5 <= null max 0.5"), "%s", v);
    m.spearman = 0.9, m.pred_metamer = 3;
    CHECK(t, !metamer_judge(&m, &ns, "rock", "jazz", v, sizeof v) && strstr(v, "prediction 'jazz' != natural 'rock'"), "%s", v);
    m.pred_metamer = 2;
    ns.max_spearman = 1, m.spearman = 1; /* 9 logits: the null reaches the ceiling */
    CHECK(t, metamer_judge(&m, &ns, "rock", "rock", v, sizeof v), "ceiling met: %s", v);
    m.spearman = 0.98;
    CHECK(t, !metamer_judge(&m, &ns, "rock", "rock", v, sizeof v) && strstr(v, "spearman"), "below the ceiling: %s", v);
    m.spearman = 1, ns.max_snr_db = 10; /* SNR is unbounded: no ceiling rule */
    CHECK(t, !metamer_judge(&m, &ns, "rock", "rock", v, sizeof v) && strstr(v, "snr_db 10 <= null max 10"), "%s", v);
    CHECK(t, !metamer_judge(&m, NULL, "rock", "rock", v, sizeof v) && strstr(v, "no null"), "%s", v);
}

TEST(core_sha256_known_vectors) {
    char hex[65];
    sha256_hex("abc", 3, hex);
    CHECK(t, !strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "abc: %s", hex);
    sha256_hex("", 0, hex);
    CHECK(t, !strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "empty: %s", hex);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(m, strlen(m), hex);
    CHECK(t, !strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "448 bits: %s", hex);
}

/* ------------------------------------------------------- jobs and shards */

TEST(synth_shards_partition_the_jobs) {
    for (int n = 1; n <= 7; n++)
        for (int jobs = 0; jobs <= 40; jobs++)
            for (int j = 0; j < jobs; j++) {
                int owners = 0;
                for (int k = 1; k <= n; k++) owners += synth_shard_has(j, k, n);
                CHECK(t, owners == 1, "job %d of %d has %d owners among %d shards", j, jobs, owners, n);
            }
    int k, n;
    Error err = {0};
    CHECK(t, synth_shard_parse("3/10", &k, &n, &err) == 0 && k == 3 && n == 10, "3/10");
    CHECK(t, synth_shard_parse("0/10", &k, &n, &err) != 0 && strstr(err.msg, "1 <= K <= N"), "0/10: %s", err.msg);
    CHECK(t, synth_shard_parse("4/3", &k, &n, &err) != 0, "4/3 accepted");
    CHECK(t, synth_shard_parse("1/2x", &k, &n, &err) != 0, "1/2x accepted");
    char d[64];
    synth_stage_dirname("word/relu4", d, sizeof d);
    CHECK(t, !strcmp(d, "word.relu4"), "dirname %s", d);
    synth_stage_dirname("../x y", d, sizeof d);
    CHECK(t, !strcmp(d, "_..x_y"), "dirname %s", d);
}

/* Dry runs of 3 shards list every (clip, stage, seed) of the full list once. */
TEST(synth_dry_run_shards_cover_the_list) {
    SynthFixture f;
    if (sfx_make(t, &f, "dry", 3, false) != 0) return;
    char out[8192], all[8192] = "";
    char *argv[] = {"synth", "--model", f.model, "--manifest", f.manifest, "--stages", "all", "--seeds", "2",
                    "--dry-run", "--shard", "1/1", NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, argv, out, sizeof out) == 0, "dry run: %s", out);
    int full = 0;
    for (char *p = out; (p = strchr(p, '\n')); p++) full++;
    full--; /* the "N jobs" line */
    CHECK(t, full == 3 * 11 * 2, "full list: %d jobs, want 66 (3 clips x 11 stages x 2 seeds)", full);
    int total = 0;
    for (int k = 1; k <= 3; k++) {
        char shard[16];
        snprintf(shard, sizeof shard, "%d/3", k);
        argv[11] = shard;
        REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, argv, out, sizeof out) == 0, "%s", out);
        for (char *line = out; *line;) {
            char *end = strchr(line, '\n');
            if (!end) break;
            *end = 0;
            if (strchr(line, '\t')) {
                int idx = atoi(line);
                CHECK(t, idx % 3 == k - 1, "job %d in shard %d", idx, k);
                total++;
                CHECK(t, !strstr(all, line), "job listed twice: %s", line);
                if (strlen(all) + strlen(line) + 2 < sizeof all) strcat(strcat(all, line), "\n");
            }
            line = end + 1;
        }
    }
    CHECK(t, total == full, "shards list %d jobs, the full list %d", total, full);
}

/* `--stages paper` is Feather 2023's list on each clip's path: cochleagram,
 * relus, avgpools and the task's logits; no max-pool, conv or batchnorm. */
TEST(synth_paper_stage_set) {
    SynthFixture f;
    if (sfx_make(t, &f, "paper", 3, true) != 0) return;
    char out[8192];
    char *argv[] = {"synth", "--model", f.model, "--manifest", f.manifest, "--stages", "paper", "--dry-run", NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, argv, out, sizeof out) == 0, "dry run: %s", out);
    /* Clips c0 and c2 are task a, c1 is task b (the fixture). */
    char got[3][256] = {"", "", ""};
    for (char *line = out, *end; (end = strchr(line, '\n')); line = end + 1) {
        *end = 0;
        char clip[64], stage[64];
        int idx, seed;
        if (sscanf(line, "%d\t%63[^\t]\t%63[^\t]\t%d", &idx, clip, stage, &seed) != 4) continue;
        int c = clip[strlen(clip) - 1] - '0';
        REQUIRE(t, c >= 0 && c < 3, "clip %s", clip);
        strcat(strcat(got[c], stage), " ");
    }
    const char *want_a = "cochleagram relu0 a/relu1 a/relufc a/final ";
    CHECK(t, !strcmp(got[0], want_a) && !strcmp(got[2], want_a), "task a: '%s', '%s'", got[0], got[2]);
    CHECK(t, !strcmp(got[1], "cochleagram relu0 b/pool b/final "), "task b: '%s'", got[1]);
    Network net;
    Error err = {0};
    REQUIRE(t, network_load(&net, f.model, &err) == 0, "%s", err.msg);
    int stages[32];
    int n = network_parse_stages(&net, "paper", stages, 32, &err);
    CHECK(t, n == 7, "whole-model paper set: %d stages, want 7 (both branches)", n);
    CHECK(t, network_parse_stages(&net, "paper", stages, 3, &err) < 0 && strstr(err.msg, "too many"),
          "max not enforced: %s", err.msg);
    CHECK(t, network_stage_set(&net, "relu0", stages) == -1, "a stage name taken for a set");
    network_free(&net);
}
