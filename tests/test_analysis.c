/* `metamers analyze` end to end on synthetic trial logs, and its input
 * validation. experiment/experiment.h (simulated observers of the runner) did
 * not exist when this was written, so the logs are generated here in the same
 * BIDS TSV layout, with known per-observer lapse rates, per-clip difficulty
 * and per-condition accuracy; the tests check that the report recovers them
 * within sampling error. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../analysis/ana_internal.h"
#include "analysis_fixture.h"
#include "test.h"

/* ----------------------------------------------------- synthetic study */

#define SUBJ 20
#define CLIPS 60
#define CONDS 6 /* natural + 5 metamer stages */
#define LABELS TEST_GENRES
static const char *stage_name[CONDS] = {"", "cochleagram", "relu0", "relu1", "relu2", "relu3"};
/* Human accuracy without lapses for an average clip, per condition: humans
 * fail on deep-stage metamers (Feather 2023); the last is below 0.2. */
static const double human_base[CONDS] = {0.92, 0.88, 0.8, 0.6, 0.35, 0.12};

typedef struct {
    double lapse[SUBJ];
    double difficulty[CLIPS];
    double expected_cell[CONDS];     /* mean over participants of expected accuracy */
    double expected_subject[SUBJ];   /* expected main accuracy per participant */
    double item_expected[CLIPS * CONDS]; /* mean over the participants who heard it */
    double model_conf[CLIPS * CONDS];
    unsigned char model_correct[CLIPS * CONDS];
} Truth;

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double logit(double p) { return log(p / (1 - p)); }

/* Clip c for participant s plays in condition (c + s) % CONDS: a Latin-square
 * rotation, every participant hears every clip once and 10 clips per cell. */
static int condition_of(int s, int c) { return (c + s) % CONDS; }

static double p_correct(const Truth *tr, int s, int c, int k) {
    double p = sigmoid(logit(human_base[k]) - tr->difficulty[c]);
    return (1 - tr->lapse[s]) * p + tr->lapse[s] / LABELS;
}

static const char *stim_path(int c, int k, char *buf, size_t n) {
    if (k == 0)
        snprintf(buf, n, "clips/clip%02d.wav", c);
    else
        snprintf(buf, n, "metamers/%s/clip%02d_s0.wav", stage_name[k], c);
    return buf;
}

static int wrong_answer(Rng *rng, int label) {
    /* Systematic confusions (label -> label + 1) in 60% of errors. */
    if (rng_uniform(rng) < 0.6) return (label + 1) % LABELS;
    return (label + 1 + (int)rng_below(rng, LABELS - 1)) % LABELS;
}


static const char *trial_header =
    "trial\tblock\ttrial_type\tclip_id\tstimulus_path\tcondition\tstage\tmodel\ttrue_label\t"
    "response\tcorrect\trt_ms\tonset_iso8601\treplays\n";

static void trial_row(Buf *b, int n, const char *type, const char *clip, const char *path,
                      int k, int label, int response) {
    append(b, "%d\t1\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t2024-05-01T10:00:%02dZ\t0\n", n,
           type, clip, path, k ? "metamer" : "natural", k ? stage_name[k] : "n/a",
           k ? "default" : "n/a", test_genres[label], test_genres[response], label == response,
           900 + 7 * n % 400, n % 60);
}

/* Writes participants.tsv, the trial logs, model.csv and metamers.csv. The
 * extra participants exercise each exclusion: sub-21 failed the headphone
 * screen (no logs), sub-22 carries the excluded flag, sub-23 fails the catch
 * trials. */
static void simulate(TestCtx *t, const char *dir, Truth *tr, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    for (int s = 0; s < SUBJ; s++) tr->lapse[s] = 0.02 + 0.18 * s / (SUBJ - 1);
    for (int c = 0; c < CLIPS; c++) tr->difficulty[c] = 1.2 * rng_normal(&rng);
    Buf part = {0}, model = {0}, met = {0};
    append(&part, "participant_id\tage_group\theadphone_check\texcluded\n");
    memset(tr->expected_cell, 0, sizeof tr->expected_cell);
    memset(tr->item_expected, 0, sizeof tr->item_expected);
    double item_n[CLIPS * CONDS] = {0};
    for (int s = 0; s < SUBJ + 2; s++) {
        bool real = s < SUBJ;
        char id[16], path[512], rel[128];
        snprintf(id, sizeof id, "%02d", s + 1 + (s >= SUBJ)); /* 01..20, 22, 23 */
        append(&part, "sub-%s\tn/a\tpass\t%s\n", id, s == SUBJ ? "true" : "false");
        Buf log = {0};
        append(&log, "%s", trial_header);
        int n = 1;
        for (int i = 0; i < 3; i++, n++) trial_row(&log, n, "practice", "prac", "p.wav", 0, i, i);
        if (real) tr->expected_subject[s] = 0;
        for (int c = 0; c < CLIPS; c++, n++) {
            int k = condition_of(s, c), label = c % LABELS;
            double p = p_correct(tr, real ? s : 0, c, k);
            int resp = rng_uniform(&rng) < p ? label : wrong_answer(&rng, label);
            char clip[16];
            snprintf(clip, sizeof clip, "clip%02d", c);
            trial_row(&log, n, "main", clip, stim_path(c, k, rel, sizeof rel), k, label, resp);
            if (c % 15 == 14) { /* four catch trials */
                int ok = s == SUBJ + 1 ? c == 14 : 1;
                trial_row(&log, ++n, "catch", "catch", "catch.wav", 0, 0, ok ? 0 : 1);
            }
            if (!real) continue;
            tr->expected_cell[k] += p / (CLIPS / CONDS) / SUBJ;
            tr->expected_subject[s] += p / CLIPS;
            tr->item_expected[c * CONDS + k] += p;
            item_n[c * CONDS + k]++;
        }
        snprintf(path, sizeof path, "%s/subjects/sub-%s/beh/sub-%s_task-genre_run-1_beh.tsv", dir,
                 id, id);
        write_text(t, path, log.s);
        buf_free(&log);
    }
    append(&part, "sub-21\tn/a\tfail\tfalse\n");
    write_text(t, join(dir, "participants.tsv"), part.s);
    /* The model: confident and right on easy clips, unsure and wrong on hard
     * ones; it recognizes its own metamers almost as well as natural clips. */
    append(&model, "clip_id,task,label,top1,p_top1,correct,stimulus_path,condition,stage,model\n");
    append(&met, "clip,stage,seed,preset,iterations,seconds,final_loss,spearman,pearson,snr_db,"
                 "passed,pred_natural,pred_metamer\n");
    for (int c = 0; c < CLIPS; c++)
        for (int k = 0; k < CONDS; k++) {
            int i = c * CONDS + k, label = c % LABELS;
            double z = logit(k == 0 ? 0.85 : 0.8) - tr->difficulty[c] + 0.4 * rng_normal(&rng);
            tr->model_correct[i] = z > 0;
            tr->model_conf[i] = sigmoid(fabs(z) * (z > 0 ? 1 : 0.5));
            tr->item_expected[i] /= item_n[i];
            int top1 = z > 0 ? label : wrong_answer(&rng, label);
            char rel[128];
            append(&model, "clip%02d,genre,%s,%s,%.6f,%d,/data/study/%s,%s,%s,%s\n", c, test_genres[label],
                   test_genres[top1], tr->model_conf[i], z > 0, stim_path(c, k, rel, sizeof rel),
                   k ? "metamer" : "natural", k ? stage_name[k] : "n/a", k ? "default" : "n/a");
            if (k)
                append(&met, "clip%02d,%s,0,fast,100,1.5,0.01,0.9,0.9,20,%s,%s,%s\n", c,
                       stage_name[k], "true", test_genres[label], test_genres[label]);
        }
    write_text(t, join(dir, "model.csv"), model.s);
    write_text(t, join(dir, "metamers.csv"), met.s);
    buf_free(&part);
    buf_free(&model);
    buf_free(&met);
}

/* ------------------------------------------------------------- end to end */

TEST(analysis_end_to_end_recovers_truth) {
    const char *dir = test_tmpdir(t), *globs[1];
    Truth *tr = calloc(1, sizeof *tr);
    simulate(t, dir, tr, 42);
    AnalysisOptions o = quick_options(dir, globs);
    o.metamers = quick_paths.metamers;
    Error err = {{0}};
    REQUIRE(t, analysis_run(&o, &err) == 0, "analysis_run: %s", err.msg);
    const char *out = o.out;
    /* Exclusions: one at each step, 20 included. */
    const char *ex = join(out, "exclusions.csv");
    CHECK(t, csv_value(t, ex, "participant_id", "sub-21", "included") == 0, "sub-21 out");
    CHECK(t, csv_value(t, ex, "participant_id", "sub-22", "included") == 0, "sub-22 out");
    CHECK(t, fabs(csv_value(t, ex, "participant_id", "sub-23", "catch_accuracy") - 0.25) < 1e-9,
          "sub-23 catch accuracy 1/4");
    /* Per-participant accuracy: within 3 binomial SEs of the truth for (nearly)
     * everyone, and tracking the lapse rates. */
    int within = 0;
    double got[SUBJ];
    for (int s = 0; s < SUBJ; s++) {
        char id[16];
        snprintf(id, sizeof id, "sub-%02d", s + 1);
        got[s] = csv_value(t, ex, "participant_id", id, "main_accuracy");
        double p = tr->expected_subject[s], se = sqrt(p * (1 - p) / CLIPS);
        within += fabs(got[s] - p) < 3 * se;
    }
    CHECK(t, within >= SUBJ - 1, "%d of %d participants within 3 SE", within, SUBJ);
    CHECK(t, stat_pearson(got, tr->expected_subject, SUBJ) > 0.3, "accuracy tracks lapses");
    /* Per condition: the CI over participants covers the truth (allowing one
     * miss in six at 95%), and the estimate is within 3 SE. */
    const char *cond = join(out, "conditions.csv");
    int covered = 0;
    for (int k = 0; k < CONDS; k++) {
        const char *label = k ? stage_name[k] : "natural";
        double h = csv_value(t, cond, "condition", label, "human_acc");
        double lo = csv_value(t, cond, "condition", label, "human_ci_lo");
        double hi = csv_value(t, cond, "condition", label, "human_ci_hi");
        double p = tr->expected_cell[k], se = sqrt(p * (1 - p) / (SUBJ * CLIPS / CONDS));
        CHECK(t, fabs(h - p) < 3 * se + 0.02, "%s: %.3f vs truth %.3f", label, h, p);
        covered += lo <= p && p <= hi;
        CHECK(t, lo < h && h < hi, "%s: CI brackets the estimate", label);
    }
    CHECK(t, covered >= CONDS - 1, "CIs cover the truth in %d of %d conditions", covered, CONDS);
    /* Per-stimulus correlation: the observed r with model confidence,
     * disattenuated by the split-half ceiling, recovers the correlation with
     * the noiseless expected human accuracy. */
    double r_true = stat_pearson(tr->item_expected, tr->model_conf, CLIPS * CONDS);
    const char *pc = join(out, "per_clip_correlations.csv");
    double r_obs = csv_value(t, pc, "scope", "all items", "r_confidence");
    double rel = csv_value(t, pc, "scope", "all items", "reliability_pearson");
    CHECK(t, rel > 0.2 && rel < 1, "reliability %.3f", rel);
    CHECK(t, r_obs < sqrt(rel) + 0.05, "r %.3f under its ceiling %.3f", r_obs, sqrt(rel));
    CHECK(t, fabs(r_obs / sqrt(rel) - r_true) < 0.15, "disattenuated r %.3f vs true %.3f",
          r_obs / sqrt(rel), r_true);
    /* Error consistency: shared difficulty makes humans and model err on the
     * same clips (kappa > 0); the deepest stage is flagged (accuracy < .2). */
    const char *ec = join(out, "error_consistency.csv");
    double k_nat = csv_value(t, ec, "condition", "natural", "kappa_hm");
    CHECK(t, k_nat > 0.05, "natural human-model kappa %.3f", k_nat);
    CHECK(t, csv_value(t, ec, "condition", "natural", "n_hh_pairs") > 0, "human-human pairs");
    CHECK(t, strcmp(csv_text(t, ec, "condition", "relu3", "low_accuracy_flag"), "true") == 0,
          "relu3 flagged");
    CHECK(t, strcmp(csv_text(t, ec, "condition", "natural", "low_accuracy_flag"), "false") == 0,
          "natural not flagged");
    double hacc = csv_value(t, ec, "condition", "relu3", "human_acc");
    CHECK(t, hacc < 0.2, "relu3 human accuracy %.3f is below .2 (flagged)", hacc);
    /* The Feather 2023 interaction: humans fall with stage, the model does not. */
    const char *an = join(out, "anova.csv");
    double p_int = csv_value(t, an, "effect", "observer x stage", "p_permutation");
    double p_f = csv_value(t, an, "effect", "observer x stage", "p");
    CHECK(t, p_int <= 1.0 / 2000 + 1e-12, "interaction permutation p %.4g floored", p_int);
    CHECK(t, p_f < 1e-6, "interaction F-test p %.3g", p_f);
    /* Everything written, nothing half-written. */
    const char *files[] = {"report.md", "report.html", "recognition.svg", "recognition.csv",
                           "per_clip.svg", "per_clip.csv", "error_consistency.svg",
                           "error_consistency_pairs.csv", "confusion_genre.svg",
                           "confusion_genre.csv", "clip_errors.csv", "condition_comparison.csv",
                           "participant_stage_accuracy.csv", "metamer_success.csv"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        struct stat sb;
        CHECK(t, stat(join(out, files[i]), &sb) == 0 && sb.st_size > 100, "%s written", files[i]);
    }
    DIR *dp = opendir(out);
    REQUIRE(t, dp != NULL, "open %s", out);
    for (struct dirent *e; (e = readdir(dp));)
        CHECK(t, !strstr(e->d_name, ".tmp"), "temporary file left: %s", e->d_name);
    closedir(dp);
    char *html = NULL;
    size_t n = 0;
    REQUIRE(t, read_file(join(out, "report.html"), &html, &n, &err) == 0, "read html");
    CHECK(t, strstr(html, "<svg") && strstr(html, "</html>"), "html embeds the figures");
    free(html);
    free(tr);
}

TEST(analysis_reproducible_with_seed) {
    const char *dir = test_tmpdir(t), *globs[1];
    Truth *tr = calloc(1, sizeof *tr);
    simulate(t, dir, tr, 7);
    AnalysisOptions o = quick_options(dir, globs);
    o.permutations = 200;
    Error err = {{0}};
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    REQUIRE(t, analysis_run(&o, &err) == 0, "%s", err.msg);
    REQUIRE(t, read_file(join(o.out, "error_consistency_pairs.csv"), &a, &na, &err) == 0, "read");
    REQUIRE(t, analysis_run(&o, &err) == 0, "%s", err.msg);
    REQUIRE(t, read_file(join(o.out, "error_consistency_pairs.csv"), &b, &nb, &err) == 0, "read");
    CHECK(t, na == nb && memcmp(a, b, na) == 0, "same seed, same bytes");
    free(a);
    free(b);
    free(tr);
}

/* ------------------------------------------------------ input validation */

/* A minimal natural-only study: two participants, six clips, model
 * responses keyed by clip (no stimulus_path, condition or stage columns). */
static void small_study(TestCtx *t, const char *dir, const char *header_extra, const char *bad_row) {
    const char *base = "trial\ttrial_type\tclip_id\tcondition\tstage\tmodel\ttrue_label\tresponse\tcorrect%s\n";
    for (int s = 1; s <= 2; s++) {
        Buf b = {0};
        append(&b, base, header_extra);
        for (int c = 0; c < 6; c++) {
            if (bad_row && s == 1 && c == 2) {
                append(&b, "%s\n", bad_row);
                continue;
            }
            int ok = (c + s) % 3 != 0;
            append(&b, "%d\tmain\tc%d\tnatural\tn/a\tn/a\t%s\t%s\t%d%s\n", c + 1, c, test_genres[c % 2],
                   ok ? test_genres[c % 2] : test_genres[2], ok, header_extra[0] ? "\tx" : "");
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/subjects/sub-0%d/beh/sub-0%d_task-genre_run-1_beh.tsv",
                 dir, s, s);
        write_text(t, path, b.s);
        buf_free(&b);
    }
    write_text(t, join(dir, "participants.tsv"),
               "participant_id\theadphone_check\texcluded\nsub-01\tpass\tfalse\nsub-02\tpass\tn/a\n");
    Buf m = {0};
    append(&m, "clip_id,task,label,top1,p_top1,correct\n");
    for (int c = 0; c < 6; c++)
        append(&m, "c%d,genre,%s,%s,0.%d,%d\n", c, test_genres[c % 2], test_genres[c % 3 ? c % 2 : 3], 5 + c,
               c % 3 != 0);
    write_text(t, join(dir, "model.csv"), m.s);
    buf_free(&m);
}

/* Runs the analysis expecting failure; the message must contain every
 * fragment. */
static void expect_error(TestCtx *t, const AnalysisOptions *o, const char *const *want, int n) {
    Error err = {{0}};
    int rc = analysis_run(o, &err);
    CHECK(t, rc != 0, "expected an error containing '%s'", want[0]);
    for (int i = 0; i < n; i++)
        CHECK(t, strstr(err.msg, want[i]) != NULL, "message '%s' lacks '%s'", err.msg, want[i]);
}

TEST(analysis_small_natural_only_study) {
    const char *dir = test_tmpdir(t), *globs[1];
    small_study(t, dir, "", NULL);
    AnalysisOptions o = quick_options(dir, globs);
    Error err = {{0}};
    REQUIRE(t, analysis_run(&o, &err) == 0, "%s", err.msg);
    /* sub-01 is right on c0,c1,c3,c4 (4/6), sub-02 on c0,c2,c3,c5 (4/6). */
    const char *cond = join(o.out, "conditions.csv");
    double h = csv_value(t, cond, "condition", "natural", "human_acc");
    CHECK(t, fabs(h - 4.0 / 6) < 1e-9, "human accuracy %.6f, want 2/3", h);
    /* The model is right on c1, c2, c4, c5: each participant heard all six. */
    double m = csv_value(t, cond, "condition", "natural", "model_acc");
    CHECK(t, fabs(m - 4.0 / 6) < 1e-9, "model accuracy %.6f, want 2/3", m);
    /* Kappa by hand, sub-01 vs model: human 110110, model 011011 ->
     * n11 = 2, n10 = 2, n01 = 2, n00 = 0; c_obs = 1/3, c_exp = 4/9 + 1/9 = 5/9,
     * kappa = (1/3 - 5/9)/(4/9) = -1/2. sub-02 vs model: human 101101, model
     * 011011 -> n11 = 2, n10 = 2, n01 = 2, n00 = 0: also -1/2. */
    const char *ec = join(o.out, "error_consistency.csv");
    CHECK(t, fabs(csv_value(t, ec, "condition", "natural", "kappa_hm") + 0.5) < 1e-9,
          "kappa human-model -1/2");
    /* sub-01 vs sub-02 on all six: 110110 vs 101101 -> n11 = 2, n10 = 2,
     * n01 = 2, n00 = 0: kappa -1/2 too. */
    CHECK(t, fabs(csv_value(t, ec, "condition", "natural", "kappa_hh") + 0.5) < 1e-9,
          "kappa human-human -1/2");
    char *md = NULL;
    size_t n = 0;
    REQUIRE(t, read_file(join(o.out, "report.md"), &md, &n, &err) == 0, "report.md");
    CHECK(t, strstr(md, "## Accuracy per condition") != NULL, "markdown sections");
    free(md);
}

TEST(analysis_error_missing_column) {
    const char *dir = test_tmpdir(t), *globs[1];
    small_study(t, dir, "", NULL);
    write_text(t, join(dir, "subjects/sub-01/beh/sub-01_task-genre_run-1_beh.tsv"),
               "trial\tclip_id\tcondition\ttrue_label\tresponse\n1\tc0\tnatural\tblues\tblues\n");
    AnalysisOptions o = quick_options(dir, globs);
    const char *want[] = {"sub-01_task-genre_run-1_beh.tsv:1: missing column 'correct'"};
    expect_error(t, &o, want, 1);
}

TEST(analysis_error_bad_values_name_file_and_line) {
    const char *dir = test_tmpdir(t), *globs[1];
    small_study(t, dir, "", "3\tmain\tc2\tnatural\tn/a\tn/a\tblues\tblues\tmaybe");
    AnalysisOptions o = quick_options(dir, globs);
    const char *want[] = {"sub-01_task-genre_run-1_beh.tsv:4: correct: 'maybe' (expected 0 or 1)"};
    expect_error(t, &o, want, 1);
    small_study(t, dir, "", "3\tmain\tc2\tnatural\tblues");
    const char *want2[] = {"sub-01_task-genre_run-1_beh.tsv:4: 5 fields, the header has 9"};
    expect_error(t, &o, want2, 1);
    small_study(t, dir, "", "3\ttest\tc2\tnatural\tn/a\tn/a\tblues\tblues\t1");
    const char *want3[] = {":4: trial_type: 'test' (expected main, practice, catch or screening)"};
    expect_error(t, &o, want3, 1);
    small_study(t, dir, "", NULL);
    write_text(t, join(dir, "participants.tsv"),
               "participant_id\theadphone_check\nsub-01\tpass\nsub-02\tmaybe\n");
    const char *want4[] = {"participants.tsv:3: headphone_check: 'maybe' (expected pass or fail)"};
    expect_error(t, &o, want4, 1);
    small_study(t, dir, "", NULL);
    write_text(t, join(dir, "model.csv"), "clip_id,task,label,top1,p_top1,correct\nc0,genre,blues,blues,1.5,1\n");
    const char *want5[] = {"model.csv:2: p_top1: '1.5' is not a probability"};
    expect_error(t, &o, want5, 1);
}

TEST(analysis_error_unmatched_clip_and_observers) {
    const char *dir = test_tmpdir(t), *globs[1];
    small_study(t, dir, "", "3\tmain\tc9\tnatural\tn/a\tn/a\tblues\tblues\t1");
    AnalysisOptions o = quick_options(dir, globs);
    const char *want[] = {"sub-01_task-genre_run-1_beh.tsv:4: clip 'c9', condition 'natural'",
                          "no model response in", "model.csv (1 unmatched trial in all)"};
    expect_error(t, &o, want, 3);
    /* Logs of someone participants.tsv does not list. */
    small_study(t, dir, "", NULL);
    write_text(t, join(dir, "subjects/sub-03/beh/sub-03_task-genre_run-1_beh.tsv"),
               "trial\tclip_id\tcondition\ttrue_label\tresponse\tcorrect\n1\tc0\tnatural\tblues\tblues\t1\n");
    const char *want2[] = {"participant sub-03 has trial logs", "but no row in"};
    expect_error(t, &o, want2, 2);
    /* Someone listed (and not excluded) without logs. */
    small_study(t, dir, "", NULL);
    unlink(join(dir, "subjects/sub-03/beh/sub-03_task-genre_run-1_beh.tsv"));
    write_text(t, join(dir, "participants.tsv"),
               "participant_id\theadphone_check\texcluded\nsub-01\tpass\tfalse\nsub-02\tpass\tfalse\n"
               "sub-04\tpass\tfalse\nsub-05\tfail\tfalse\n");
    const char *want3[] = {"participant sub-04 (", "participants.tsv:4) has no trial logs"};
    expect_error(t, &o, want3, 2);
    /* A glob that matches nothing. */
    small_study(t, dir, "", NULL);
    write_text(t, join(dir, "participants.tsv"),
               "participant_id\theadphone_check\texcluded\nsub-01\tpass\tfalse\nsub-02\tpass\tfalse\n");
    const char *nothing[] = {"/nonexistent/*_beh.tsv"};
    AnalysisOptions o2 = o;
    o2.trial_globs = nothing;
    const char *want4[] = {"--trials '/nonexistent/*_beh.tsv' matches no file"};
    expect_error(t, &o2, want4, 1);
    /* Two responses for the same clip. */
    write_text(t, join(dir, "model.csv"), "clip_id,task,label,top1,p_top1,correct\n"
                                          "c0,genre,blues,blues,0.9,1\nc0,genre,blues,jazz,0.5,0\n");
    const char *want5[] = {"model.csv:3: second response of task 'genre' to clip 'c0' (first on line 2)"};
    expect_error(t, &o, want5, 1);
}

TEST(analysis_error_metamer_not_in_metamers_csv) {
    const char *dir = test_tmpdir(t), *globs[1];
    Truth *tr = calloc(1, sizeof *tr);
    simulate(t, dir, tr, 3);
    write_text(t, join(dir, "metamers.csv"),
               "clip,stage,seed,passed\nclip00,relu0,0,true\nclip00,relu0,0,false\n");
    AnalysisOptions o = quick_options(dir, globs);
    o.metamers = quick_paths.metamers;
    const char *want[] = {"metamers.csv:3: clip 'clip00' stage 'relu0' seed '0' listed twice"};
    expect_error(t, &o, want, 1);
    write_text(t, join(dir, "metamers.csv"), "clip,stage,seed,passed\nclip00,relu0,0,true\n");
    const char *want2[] = {"no row in", "metamers.csv (", "unmatched trials in all)"};
    expect_error(t, &o, want2, 3);
    free(tr);
}

TEST(analysis_command_line) {
    /* Usage errors: non-zero, one line on stderr (silenced here). */
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    char *help[] = {"analyze", "--help", NULL};
    char *missing[] = {"analyze", "--trials", "x", "--participants", "p.tsv", NULL};
    char *bad[] = {"analyze", "--bootstrap", "10", NULL};
    char *unknown[] = {"analyze", "--frobnicate", NULL};
    int out = dup(1);
    dup2(devnull, 1);
    int rc_help = analysis_cmd_analyze(2, help);
    fflush(stdout);
    dup2(out, 1);
    int rc_missing = analysis_cmd_analyze(5, missing);
    int rc_bad = analysis_cmd_analyze(3, bad);
    int rc_unknown = analysis_cmd_analyze(2, unknown);
    fflush(stderr);
    dup2(saved, 2);
    close(devnull);
    close(saved);
    close(out);
    CHECK(t, rc_help == 0, "--help exits 0 (%d)", rc_help);
    CHECK(t, rc_missing == 2, "missing options exit 2 (%d)", rc_missing);
    CHECK(t, rc_bad == 2, "--bootstrap below 1000 rejected (%d)", rc_bad);
    CHECK(t, rc_unknown == 2, "unknown option rejected (%d)", rc_unknown);
}

/* ------------------------------------------------------------ table reader */

typedef struct {
    long lines[8];
    char first[8][32];
    int n;
} Rows;

static int collect(void *ctx, const TableRow *row, bool header, Error *err) {
    (void)header;
    (void)err;
    Rows *r = ctx;
    if (r->n < 8) {
        r->lines[r->n] = row->line;
        snprintf(r->first[r->n], sizeof r->first[r->n], "%s", row->n > 1 ? row->fields[1] : "");
        r->n++;
    }
    return 0;
}

TEST(analysis_table_reader_lines) {
    const char *dir = test_tmpdir(t);
    /* BOM, CRLF, a blank line and a quoted field spanning two lines: the
     * record after it must still carry its physical line number. */
    write_text(t, join(dir, "a.csv"),
               "\xEF\xBB\xBFid,text\r\n1,plain\r\n\r\n2,\"two\nlines\"\n3,after\n");
    Rows r = {0};
    Error err = {{0}};
    REQUIRE(t, table_read(join(dir, "a.csv"), ',', collect, &r, &err) == 0, "%s", err.msg);
    CHECK(t, r.n == 4, "4 records, got %d", r.n);
    CHECK(t, strcmp(r.first[0], "text") == 0, "BOM stripped from the header: '%s'", r.first[0]);
    CHECK(t, r.lines[1] == 2 && r.lines[2] == 4 && r.lines[3] == 6, "lines %ld %ld %ld",
          r.lines[1], r.lines[2], r.lines[3]);
    CHECK(t, strcmp(r.first[2], "two\nlines") == 0, "quoted newline kept");
    write_text(t, join(dir, "b.tsv"), "a\tb\n1\t\"x\"y\n");
    CHECK(t, table_read(join(dir, "b.tsv"), '\t', collect, &r, &err) != 0, "malformed quote");
    CHECK(t, strstr(err.msg, "b.tsv:2:") != NULL, "names file:line: %s", err.msg);
    write_text(t, join(dir, "c.tsv"), "a\tb\n1\t\"open\n");
    CHECK(t, table_read(join(dir, "c.tsv"), '\t', collect, &r, &err) != 0, "unterminated");
    CHECK(t, strstr(err.msg, "c.tsv:2: unterminated quoted field") != NULL, "%s", err.msg);
    write_text(t, join(dir, "d.tsv"), "");
    CHECK(t, table_read(join(dir, "d.tsv"), '\t', collect, &r, &err) != 0, "empty file");
    CHECK(t, strstr(err.msg, "empty file") != NULL, "%s", err.msg);
    /* Tabs delimit even though libcsv treats them as blanks by default. */
    write_text(t, join(dir, "e.tsv"), "a\tb\tc\n1\t\t3\n");
    memset(&r, 0, sizeof r);
    REQUIRE(t, table_read(join(dir, "e.tsv"), '\t', collect, &r, &err) == 0, "%s", err.msg);
    CHECK(t, r.n == 2 && r.first[1][0] == 0, "empty middle field kept");
}
