/* `metamers analyze` end to end on trial logs written by the experiment
 * runner itself (experiment/experiment.h's simulated observers), with known
 * per-clip difficulty and per-observer lapse rates. */
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

/* ------------------------------------- end to end through the experiment runner */

/* Simulated observers of `metamers experiment run` (observer "table": answers
 * with a prediction table's top-1, replaced by a random choice with
 * probability lapse) produce real trial logs and participants.tsv; the
 * report must recover each observer's accuracy and the per-stimulus
 * correlation with the model within sampling error. */
#include "../experiment/experiment.h"

#define R_CLIPS 26 /* 24 with metamers for the main trials, 2 natural-only for catch */
#define R_SUBJ 12
#define R_V 6      /* response choices */
static const char *r_stage[3] = {"", "relu0", "relu2"};

/* Difficulty of clip c in [0, 1): a fixed scramble. */
static double r_difficulty(int c) { return (double)(c * 7 % R_CLIPS) / R_CLIPS; }

/* Whether the human-like table (the observers) and the model are right on
 * clip c in condition k (0 natural, 1 relu0, 2 relu2): both fail on hard
 * clips, humans also on deep-stage metamers. */
static int r_human_right(int c, int k) {
    double lim[3] = {0.8, 0.6, 0.25};
    return c >= 24 || r_difficulty(c) < lim[k];
}
static int r_model_right(int c, int k) { return k ? r_difficulty(c) < 0.9 : r_difficulty(c) < 0.7; }

static void write_wav(TestCtx *t, const char *path) {
    enum { N = 400, RATE = 20000 };
    unsigned char b[44 + 2 * N] = {0};
    uint32_t v32;
    uint16_t v16;
#define PUT32(off, v) (v32 = (v), memcpy(b + (off), &v32, 4))
#define PUT16(off, v) (v16 = (v), memcpy(b + (off), &v16, 2))
    memcpy(b, "RIFF", 4), PUT32(4, 36 + 2 * N), memcpy(b + 8, "WAVEfmt ", 8);
    PUT32(16, 16), PUT16(20, 1), PUT16(22, 1), PUT32(24, RATE), PUT32(28, 2 * RATE);
    PUT16(32, 2), PUT16(34, 16), memcpy(b + 36, "data", 4), PUT32(40, 2 * N);
    for (int i = 0; i < N; i++) PUT16(44 + 2 * i, (uint16_t)(int16_t)(300 * ((i * 37) % 11 - 5)));
#undef PUT32
#undef PUT16
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    Error err = {{0}};
    make_dirs(dir, 0755, &err);
    if (atomic_write_file(path, b, sizeof b, 0644, &err) != 0)
        test_fail(t, __FILE__, __LINE__, "%s", err.msg);
}

static const char *r_stim(int c, int k, char *buf, size_t n) {
    if (k == 0)
        snprintf(buf, n, "stim/clips/c%02d.wav", c);
    else
        snprintf(buf, n, "stim/metamers/%s/c%02d_s0.wav", r_stage[k], c);
    return buf;
}

static void runner_study(TestCtx *t, const char *dir) {
    Buf man = {0}, met = {0}, human = {0}, model = {0}, design = {0};
    append(&man, "clip_id,path,label,task\n");
    append(&met, "clip,stage,seed,passed\n");
    const char *head = "clip_id,task,label,top1,p_top1,correct,stimulus_path,condition,stage,model\n";
    append(&human, "%s", head);
    append(&model, "%s", head);
    char rel[256], path[1024];
    for (int c = 0; c < R_CLIPS; c++) {
        int label = c % R_V;
        append(&man, "c%02d,clips/c%02d.wav,%s,genre\n", c, c, test_genres[label]);
        for (int k = 0; k < 3; k++) {
            if (k && c >= 24) continue;
            r_stim(c, k, rel, sizeof rel);
            snprintf(path, sizeof path, "%s/%s", dir, rel);
            write_wav(t, path);
            if (k) append(&met, "c%02d,%s,0,true\n", c, r_stage[k]);
            const char *cond = k ? (k == 1 ? "m_relu0" : "m_relu2") : "natural";
            int h = r_human_right(c, k), m = r_model_right(c, k);
            /* The runner's table observer keys rows by clip_id too and rejects a
             * clip_id with two answers, so its metamer rows go by path only. */
            char id[16] = "";
            if (!k) snprintf(id, sizeof id, "c%02d", c);
            append(&human, "%s,genre,%s,%s,0.9,%d,%s,%s,%s,%s\n", id, test_genres[label],
                   test_genres[h ? label : (label + 1) % R_V], h, rel, cond, k ? r_stage[k] : "n/a",
                   k ? "default" : "n/a");
            append(&model, "c%02d,genre,%s,%s,%.3f,%d,%s,%s,%s,%s\n", c, test_genres[label],
                   test_genres[m ? label : (label + 2) % R_V], 0.95 - 0.5 * r_difficulty(c), m, rel,
                   cond, k ? r_stage[k] : "n/a", k ? "default" : "n/a");
        }
    }
    write_text(t, join(dir, "stim/manifest.csv"), man.s);
    write_text(t, join(dir, "stim/metamers/metamers.csv"), met.s);
    write_text(t, join(dir, "human_table.csv"), human.s);
    write_text(t, join(dir, "model.csv"), model.s);
    append(&design,
           "{\"task\": \"genre\", \"seed\": 5, \"manifests\": \"stim/manifest.csv\",\n"
           " \"metamers\": [{\"model\": \"default\", \"csv\": \"stim/metamers/metamers.csv\"}],\n"
           " \"conditions\": [{\"name\": \"natural\"}, {\"name\": \"m_relu0\", \"stage\": \"relu0\"},"
           " {\"name\": \"m_relu2\", \"stage\": \"relu2\"}],\n"
           " \"trials_per_condition\": 8, \"catch_trials\": 2,\n"
           " \"response\": {\"mode\": \"choice\", \"choices\": [\"%s\", \"%s\", \"%s\", \"%s\", "
           "\"%s\", \"%s\"], \"cant_tell\": false},\n"
           " \"practice\": {\"feedback_trials\": 0, \"scored_trials\": 0},\n"
           " \"screening\": \"none\", \"calibration\": false, \"pause_ms\": 0}\n",
           test_genres[0], test_genres[1], test_genres[2], test_genres[3], test_genres[4], test_genres[5]);
    write_text(t, join(dir, "design.json"), design.s);
    buf_free(&man), buf_free(&met), buf_free(&human), buf_free(&model), buf_free(&design);
}

static double r_lapse(int s) { return 0.05 + 0.3 * (s - 1) / (R_SUBJ - 1); }

/* Expected accuracy of participant s from the stimuli in their log. */
typedef struct {
    double expected;
    int n;
} Expect;

static int expect_row(void *ctx, const TableRow *row, bool header, Error *err) {
    (void)err;
    static int c_phase, c_cond, c_clip, c_stage;
    Expect *e = ctx;
    if (header) {
        c_phase = table_col(row, "phase"), c_cond = table_col(row, "condition");
        c_clip = table_col(row, "clip_id"), c_stage = table_col(row, "stage");
        return 0;
    }
    if (strcmp(row->fields[c_phase], "main") || !strcmp(row->fields[c_cond], "catch")) return 0;
    int c = atoi(row->fields[c_clip] + 1);
    const char *st = row->fields[c_stage];
    int k = !strcmp(st, "relu0") ? 1 : !strcmp(st, "relu2") ? 2 : 0;
    e->expected += r_human_right(c, k);
    e->n++;
    return 0;
}

static int run_cmd(int (*fn)(int, char **), char **argv) {
    int argc = 0;
    while (argv[argc]) argc++;
    fflush(stdout);
    int saved = dup(1), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1); /* the runner's progress output */
    int rc = fn(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(devnull);
    return rc;
}

TEST(analysis_end_to_end_with_experiment_runner) {
    const char *dir = test_tmpdir(t);
    runner_study(t, dir);
    char design[1024], data[1024], table[1024], subject[16], observer[1200];
    snprintf(design, sizeof design, "%s/design.json", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(table, sizeof table, "%s/human_table.csv", dir);
    char *build[] = {"build", "--design", design, "--participants", "12", NULL};
    REQUIRE(t, run_cmd(experiment_cmd_build, build) == 0, "experiment build");
    for (int s = 1; s <= R_SUBJ; s++) {
        snprintf(subject, sizeof subject, "%02d", s);
        snprintf(observer, sizeof observer, "table:%s,lapse=%.4f,seed=%d", table, r_lapse(s), s);
        char *run[] = {"run", "--design", design, "--subject", subject, "--data-dir", data,
                       "--observer", observer, NULL};
        REQUIRE(t, run_cmd(experiment_cmd_run, run) == 0, "experiment run sub-%s", subject);
    }
    const char *globs[1];
    AnalysisOptions o = quick_options(dir, globs);
    snprintf(quick_paths.glob, sizeof quick_paths.glob, "%s/sub-*/beh/*_beh.tsv", data);
    snprintf(quick_paths.participants, sizeof quick_paths.participants, "%s/participants.tsv", data);
    snprintf(quick_paths.metamers, sizeof quick_paths.metamers, "%s/stim/metamers/metamers.csv", dir);
    o.metamers = quick_paths.metamers;
    o.catch_threshold = 0; /* two catch trials: a lapsing observer may miss both */
    Error err = {{0}};
    REQUIRE(t, analysis_run(&o, &err) == 0, "analysis: %s", err.msg);
    /* Each observer's accuracy: (1 - lapse) * (table right) + lapse / V on
     * the stimuli in their own log, within 3 binomial SEs. */
    const char *ex = join(o.out, "exclusions.csv");
    int within = 0;
    double got[R_SUBJ], want[R_SUBJ];
    for (int s = 1; s <= R_SUBJ; s++) {
        char log[1200], id[16];
        snprintf(log, sizeof log, "%s/sub-%02d/beh/sub-%02d_task-genre_run-1_beh.tsv", data, s, s);
        Expect e = {0, 0};
        REQUIRE(t, table_read(log, '\t', expect_row, &e, &err) == 0, "%s", err.msg);
        double p = (1 - r_lapse(s)) * e.expected / e.n + r_lapse(s) / R_V;
        snprintf(id, sizeof id, "sub-%02d", s);
        got[s - 1] = csv_value(t, ex, "participant_id", id, "main_accuracy");
        want[s - 1] = p;
        CHECK(t, csv_value(t, ex, "participant_id", id, "n_main") == 24 &&
                     csv_value(t, ex, "participant_id", id, "n_catch") == 2,
              "%s: 24 main and 2 catch trials", id);
        within += fabs(got[s - 1] - p) < 3 * sqrt(p * (1 - p) / e.n) + 1e-9;
    }
    CHECK(t, within >= R_SUBJ - 1, "%d of %d observers within 3 SE of their accuracy", within,
          R_SUBJ);
    CHECK(t, stat_pearson(got, want, R_SUBJ) > 0.4, "accuracy follows the lapse rates (r = %.2f)",
          stat_pearson(got, want, R_SUBJ));
    /* Per condition: the table is right on 80/60/25% of clips by design,
     * diluted by the mean lapse; within 3 SEs of 96 trials. */
    double mean_lapse = 0;
    for (int s = 1; s <= R_SUBJ; s++) mean_lapse += r_lapse(s) / R_SUBJ;
    const char *cond = join(o.out, "conditions.csv");
    const char *names[3] = {"natural", "relu0", "relu2"};
    for (int k = 0; k < 3; k++) {
        double right = 0;
        for (int c = 0; c < 24; c++) right += r_human_right(c, k) / 24.0;
        double p = (1 - mean_lapse) * right + mean_lapse / R_V;
        double h = csv_value(t, cond, "condition", names[k], "human_acc");
        CHECK(t, fabs(h - p) < 3 * sqrt(p * (1 - p) / 96) + 0.02, "%s: %.3f vs %.3f", names[k], h, p);
    }
    /* Per stimulus: disattenuated correlation of human accuracy with the
     * model's correctness vs the noiseless one (phi of the two tables). */
    double hx[72], mx[72];
    int n = 0;
    for (int c = 0; c < 24; c++)
        for (int k = 0; k < 3; k++) hx[n] = r_human_right(c, k), mx[n++] = r_model_right(c, k);
    double r_true = stat_pearson(hx, mx, n);
    const char *pc = join(o.out, "per_clip_correlations.csv");
    double r_obs = csv_value(t, pc, "scope", "all items", "r_correct");
    double rel = csv_value(t, pc, "scope", "all items", "reliability_pearson");
    CHECK(t, rel > 0.3, "reliability %.2f", rel);
    CHECK(t, fabs(r_obs / sqrt(rel) - r_true) < 0.25, "disattenuated r %.3f vs %.3f (r %.3f)",
          r_obs / sqrt(rel), r_true, r_obs);
    CHECK(t, csv_value(t, join(o.out, "error_consistency.csv"), "condition", "natural",
                       "kappa_hm") > 0.2,
          "humans and model err on the same natural clips");
}
