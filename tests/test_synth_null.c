/* The null distribution (`metamers null`: cache keyed by model, per-task
 * entries) and `metamers show`, on the `tiny` front end with small
 * random-weight nets, like test_synth.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../model/model.h"
#include "../stimuli/stimuli.h"
#include "../synth/synth.h"
#include "synth_fixture.h"
#include "test.h"

/* ----------------------------------------------------- null and figures */

/* Rewrites a CSV without its column `drop` (0-based), as rows were
 * written before that column came in. Quoted fields may hold commas. */
static int drop_column(const char *path, int drop) {
    char *text = sfx_slurp(path);
    if (!text) return -1;
    FILE *f = fopen(path, "w");
    if (!f) return free(text), -1;
    int field = 0;
    bool quoted = false;
    for (const char *c = text; *c; c++) {
        if (*c == '"') quoted = !quoted;
        else if (*c == '\n' && !quoted) field = 0;
        else if (*c == ',' && !quoted) field++;
        if (field != drop) fputc(*c, f); /* the comma ending field drop-1 goes too */
    }
    free(text);
    return fclose(f);
}

/* Is the first row of dir/metamers.csv's column col equal to want? */
static bool first_row_is(const char *dir, const char *col, const char *want) {
    char p[800], v[700];
    snprintf(p, sizeof p, "%s/metamers.csv", dir);
    char *csv = sfx_slurp(p);
    bool same = csv && sfx_csv_cell(csv, 1, col, v, sizeof v) && !strcmp(v, want);
    free(csv);
    return same;
}

/* The largest Spearman between stage activations of any two of the
 * fixture's clips c<idx[0..n-1]>, computed directly. */
static double max_pair_spearman(TestCtx *t, const SynthFixture *f, const char *stage_name, const int *idx, int n) {
    Network net;
    Error err = {0};
    if (network_open(&net, f->model, &err) != 0) return test_fail(t, __FILE__, __LINE__, "%s", err.msg), NAN;
    ModelRun m;
    model_run_init(&m, &net, NULL, &err);
    int stage = network_stage_index(&net, stage_name, &err);
    size_t numel = (size_t)model_stage_numel(&m, stage);
    float *act[8] = {0};
    double best = -2;
    for (int k = 0; k < n && k < 8; k++) {
        char p[800];
        snprintf(p, sizeof p, "%s/clips/c%d.wav", f->dir, idx[k]);
        Audio a;
        if (audio_read(p, 8000, 2000, &a, &err) != 0) {
            test_fail(t, __FILE__, __LINE__, "%s", err.msg);
            break;
        }
        audio_scale_to_rms(a.samples, a.n, 0.1);
        model_forward(&m, a.samples, &stage, 1);
        act[k] = alloc_floats(numel);
        memcpy(act[k], model_stage_output(&m, stage), numel * sizeof(float));
        audio_free(&a);
    }
    for (int i = 0; i < n && i < 8; i++)
        for (int j = i + 1; j < n && j < 8; j++)
            if (act[i] && act[j]) best = fmax(best, synth_spearman(act[i], act[j], numel));
    for (int k = 0; k < 8; k++) free(act[k]);
    model_run_free(&m);
    network_free(&net);
    return best;
}

TEST(synth_null_cache_and_show) {
    SynthFixture f;
    if (sfx_make(t, &f, "null", 6, false) != 0) return;
    char out[8192], stab[700];
    snprintf(stab, sizeof stab, "%s/stab.csv", f.dir);
    char *argv[] = {"null", "--model", f.model, "--manifest", f.manifest, "--stages", "cochleagram,relu1", "--pairs",
                    "100", "--stability", stab, NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_null, argv, out, sizeof out) == 0, "null: %s", out);
    CHECK(t, strstr(out, "15 pairs of 6 clips"), "pairs are capped at the 15 distinct ones: %s", out);
    char cache[700];
    snprintf(cache, sizeof cache, "%s/model.null.safetensors", f.dir);
    char sha[65];
    Error err = {0};
    REQUIRE(t, sha256_file(f.model, sha, &err) == 0, "%s", err.msg);
    NullDist d;
    bool stale;
    REQUIRE(t, synth_null_load(cache, sha, &d, &stale, &err) == 0 && !stale, "%s", err.msg);
    const NullStage *s = synth_null_find(&d, "relu1");
    REQUIRE(t, d.n_stages == 2 && s && s->n_pairs == 15, "cache holds %d stages", d.n_stages);
    /* The cached maxima are the statistics of some pair, recomputed here. */
    const int all6[] = {0, 1, 2, 3, 4, 5};
    double best = max_pair_spearman(t, &f, "relu1", all6, 6);
    CHECK(t, fabs(best - s->max_spearman) < 1e-6, "max spearman %g, by hand %g", s->max_spearman, best);
    synth_null_free(&d);
    /* Another model hash: the cache is stale, not used. */
    REQUIRE(t, synth_null_load(cache, "0000", &d, &stale, &err) == 0 && stale && d.n_stages == 0, "stale");
    char *sc = sfx_slurp(stab);
    CHECK(t, sc && strstr(sc, "relu1,15,"), "stability table: %s", sc ? sc : "(none)");
    free(sc);
    /* A few quick metamers, then the figure. */
    char odir[700], fig[700], png[700];
    snprintf(odir, sizeof odir, "%s/out", f.dir);
    snprintf(fig, sizeof fig, "%s/fig.svg", f.dir);
    snprintf(png, sizeof png, "%s/fig.png", f.dir);
    char *sargv[] = {"synth", "--model", f.model, "--manifest", f.manifest, "--stages", "cochleagram,relu1",
                     "--clips", "c0,c1", "--preset", "fast", "--steps", "200", "--out", odir, "--quiet", NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, sargv, out, sizeof out) == 0, "synth: %s", out);
    char *vargv[] = {"show", "--model", f.model, "--dir", odir, "--out", fig, NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_show, vargv, out, sizeof out) == 0, "show: %s", out);
    char *svg = sfx_slurp(fig);
    int images = 0;
    for (char *p = svg; p && (p = strstr(p, "<image")); p++) images++;
    CHECK(t, svg && images == 6 && strstr(svg, ">relu1</text>") && strstr(svg, ">c1</text>"),
          "figure: %d images", images);
    free(svg);
    vargv[6] = png;
    REQUIRE(t, sfx_run(f.dir, synth_cmd_show, vargv, out, sizeof out) == 0, "show png: %s", out);
    char *pb = sfx_slurp(png);
    CHECK(t, pb && !memcmp(pb, "\x89PNG\r\n\x1a\n", 8), "not a PNG");
    free(pb);
}

/* A model with two tasks: one null per task, from pairs of that task's
 * clips at the stages on its path, and each metamer judged by its own. */
TEST(synth_null_per_task) {
    SynthFixture f;
    if (sfx_make(t, &f, "nulltask", 6, true) != 0) return; /* task a: c0 c2 c4; b: c1 c3 c5 */
    char out[8192];
    char *argv[] = {"null", "--model", f.model, "--manifest", f.manifest, "--pairs", "100", NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_null, argv, out, sizeof out) == 0, "null: %s", out);
    CHECK(t, strstr(out, "task a: 3 pairs of 3 clips") && strstr(out, "task b: 3 pairs of 3 clips"), "said: %s", out);
    char cache[700], sha[65];
    snprintf(cache, sizeof cache, "%s/model.null.safetensors", f.dir);
    Error err = {0};
    REQUIRE(t, sha256_file(f.model, sha, &err) == 0, "%s", err.msg);
    NullDist d;
    REQUIRE(t, synth_null_load(cache, sha, &d, NULL, &err) == 0, "%s", err.msg);
    const NullStage *a0 = synth_null_find(&d, "a:relu0"), *b0 = synth_null_find(&d, "b:relu0");
    REQUIRE(t, a0 && b0 && synth_null_find(&d, "a:a/relu1") && synth_null_find(&d, "b:b/pool"),
            "per-task entries missing");
    CHECK(t, !synth_null_find(&d, "b:a/relu1") && !synth_null_find(&d, "relu0"), "entries off the task path");
    const int a_clips[] = {0, 2, 4}, b_clips[] = {1, 3, 5};
    double want_a = max_pair_spearman(t, &f, "relu0", a_clips, 3), want_b = max_pair_spearman(t, &f, "relu0", b_clips, 3);
    CHECK(t, fabs(a0->max_spearman - want_a) < 1e-6 && fabs(b0->max_spearman - want_b) < 1e-6,
          "a %g (by hand %g), b %g (by hand %g)", a0->max_spearman, want_a, b0->max_spearman, want_b);
    double b_max = b0->max_spearman;
    synth_null_free(&d);
    REQUIRE(t, unlink(cache) == 0, "cache");
    /* synth computes the missing per-task null itself and judges c1 by task b's. */
    char odir[700], v[700];
    snprintf(odir, sizeof odir, "%s/out", f.dir);
    char *sargv[] = {"synth", "--model", f.model, "--manifest", f.manifest, "--stages", "relu0", "--clips", "c1",
                     "--preset", "fast", "--steps", "10", "--out", odir, "--quiet", NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, sargv, out, sizeof out) == 0, "synth: %s", out);
    char p[800];
    snprintf(p, sizeof p, "%s/metamers.csv", odir);
    char *csv = sfx_slurp(p);
    REQUIRE(t, csv && sfx_csv_cell(csv, 1, "null_pairs", v, sizeof v), "rows: %s", csv ? csv : "");
    CHECK(t, !strcmp(v, "3"), "null pairs %s, want task b's 3", v);
    sfx_csv_cell(csv, 1, "null_spearman_max", v, sizeof v);
    CHECK(t, fabs(atof(v) - b_max) < 1e-5, "null max %s, task b's %g", v, b_max);
    CHECK(t, sfx_csv_cell(csv, 1, "start", v, sizeof v) && atoi(v) >= 0 && atoi(v) < 5, "start '%s' of fast's 5", v);
    free(csv);
    /* A new null (one pair), then `synth judge`: the row is judged by it. */
    char *oargv[] = {"null", "--model", f.model, "--manifest", f.manifest, "--task", "b", "--stages", "relu0",
                     "--pairs", "1", NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_null, oargv, out, sizeof out) == 0, "null: %s", out);
    char *jargv[] = {"synth", "judge", odir, "--model", f.model, NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, jargv, out, sizeof out) == 0, "judge: %s", out);
    CHECK(t, strstr(out, "1 metamers judged with"), "said: %s", out);
    snprintf(p, sizeof p, "%s/relu0/c1_s0.row.csv", odir);
    char *row = sfx_slurp(p);
    snprintf(p, sizeof p, "%s/metamers.csv", odir);
    csv = sfx_slurp(p);
    CHECK(t, row && csv && sfx_csv_cell(row, 1, "null_pairs", v, sizeof v) && !strcmp(v, "1") &&
                 sfx_csv_cell(csv, 1, "null_pairs", v, sizeof v) && !strcmp(v, "1"),
          "row: %s", row ? row : "(none)");
    free(row), free(csv);
    /* A row written before probing (no `start` column) and before the pooled
     * null (no `null_entry`) is still read: start 0, and judging fills in the entry. */
    snprintf(p, sizeof p, "%s/relu0/c1_s0.row.csv", odir);
    REQUIRE(t, drop_column(p, 18) == 0 && drop_column(p, 5) == 0, "rewriting %s", p);
    char *old_row = sfx_slurp(p);
    CHECK(t, old_row && !strstr(old_row, "null_entry") && !strstr(old_row, ",start,"), "old row: %s", old_row);
    free(old_row);
    REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, jargv, out, sizeof out) == 0, "judge, old row: %s", out);
    CHECK(t, first_row_is(odir, "start", "0") && first_row_is(odir, "null_entry", "b:relu0"), "old row read back");
    char missing[700];
    snprintf(missing, sizeof missing, "%s/none.safetensors", f.dir);
    char *margv[] = {"synth", "judge", odir, "--model", f.model, "--null", missing, NULL};
    CHECK(t, sfx_run(f.dir, synth_cmd_synth, margv, out, sizeof out) == 1 && strstr(out, "none.safetensors: no null"),
          "missing null: %s", out);
    /* Too few clips of a task for a null is a clear error. */
    char *targv[] = {"null", "--model", f.model, "--manifest", f.manifest, "--task", "c", NULL};
    CHECK(t, sfx_run(f.dir, synth_cmd_null, targv, out, sizeof out) == 1 && strstr(out, "--task c: the model has no such task"),
          "unknown task: %s", out);
}

/* The pooled null: pairs of all the clips whatever their task, entries named
 * by stage alone, used by synth and synth judge only when asked. */
TEST(synth_null_pooled) {
    SynthFixture f;
    if (sfx_make(t, &f, "nullpool", 6, true) != 0) return; /* task a: c0 c2 c4; b: c1 c3 c5 */
    char out[8192], odir[700], cache[700], sha[65];
    snprintf(odir, sizeof odir, "%s/out", f.dir);
    snprintf(cache, sizeof cache, "%s/model.null.safetensors", f.dir);
    char *bad[] = {"null", "--model", f.model, "--manifest", f.manifest, "--pooled", "--task", "a", NULL};
    CHECK(t, sfx_run(f.dir, synth_cmd_null, bad, out, sizeof out) == 2 && strstr(out, "exclude each other"),
          "--pooled --task: %s", out);
    /* Per-task metamer first, judged by task b's null (3 pairs). */
    char *sargv[] = {"synth", "--model", f.model, "--manifest", f.manifest, "--stages", "relu0", "--clips", "c1",
                     "--preset", "fast", "--steps", "10", "--out", odir, "--quiet", NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, sargv, out, sizeof out) == 0, "synth: %s", out);
    CHECK(t, first_row_is(odir, "null_entry", "b:relu0"), "judged by task b's null");
    /* No pooled entries yet: judging by them is a clear error naming the fix. */
    char *jargv[] = {"synth", "judge", odir, "--model", f.model, "--null-pooled", NULL};
    CHECK(t, sfx_run(f.dir, synth_cmd_synth, jargv, out, sizeof out) == 1 && strstr(out, "no null distribution for relu0") &&
                 strstr(out, "--pooled"),
          "judge without pooled entries: %s", out);
    char *nargv[] = {"null", "--model", f.model, "--manifest", f.manifest, "--pooled", "--pairs", "100", NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_null, nargv, out, sizeof out) == 0, "null --pooled: %s", out);
    CHECK(t, strstr(out, "15 pairs of 6 clips"), "said: %s", out);
    Error err = {0};
    REQUIRE(t, sha256_file(f.model, sha, &err) == 0, "%s", err.msg);
    NullDist d;
    REQUIRE(t, synth_null_load(cache, sha, &d, NULL, &err) == 0, "%s", err.msg);
    const NullStage *r0 = synth_null_find(&d, "relu0");
    /* every stage of both branches, since any clip runs through either */
    CHECK(t, r0 && synth_null_find(&d, "a/relu1") && synth_null_find(&d, "b/pool") && synth_null_find(&d, "b:relu0"),
          "pooled entries (and the per-task ones kept)");
    const int all[] = {0, 1, 2, 3, 4, 5};
    double want = max_pair_spearman(t, &f, "relu0", all, 6);
    CHECK(t, r0 && fabs(r0->max_spearman - want) < 1e-6 && r0->n_pairs == 15, "pooled max %g (by hand %g)",
          r0 ? r0->max_spearman : NAN, want);
    synth_null_free(&d);
    /* judge --null-pooled: the same metamer now judged by the pooled entry */
    REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, jargv, out, sizeof out) == 0, "judge: %s", out);
    CHECK(t, first_row_is(odir, "null_entry", "relu0") && first_row_is(odir, "null_pairs", "15"), "after judge");
    /* synth --null-pooled writes the pooled entry for a new metamer */
    char odir2[700];
    snprintf(odir2, sizeof odir2, "%s/out2", f.dir);
    sargv[14] = odir2;
    char *pargv[20];
    memcpy(pargv, sargv, sizeof(char *) * 16);
    pargv[16] = "--null-pooled", pargv[17] = NULL;
    REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, pargv, out, sizeof out) == 0, "synth --null-pooled: %s", out);
    CHECK(t, first_row_is(odir2, "null_entry", "relu0"), "a new metamer judged by the pooled null");
}
