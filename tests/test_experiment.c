/* Tests for experiment/: design parsing, counterbalanced lists, the trial
 * log (append, resume, repair), simulated observers, the file audio sink and
 * the screening sounds. Session-level tests (pseudo-terminal, SIGKILL) are in
 * test_experiment_session.c. */
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../experiment/internal.h"
#include "../model/model.h"
#include "experiment_fixture.h"
#include "test.h"

static const FixtureSpec BASIC = {.clips = 24,
                                  .with_metamers = 20,
                                  .n_conds = 3,
                                  .seeds = 2,
                                  .trials_per_condition = 4,
                                  .catch_trials = 2,
                                  .practice_feedback = 1,
                                  .practice_scored = 2,
                                  .practice_pass = 1};

/* ------------------------------------------------------------ design */

static int parse(const char *json, Design *d, Error *err) {
    return exp_design_parse(json, strlen(json), "d.json", d, err);
}

TEST(exp_design_defaults_follow_the_reference_protocol) {
    Design d;
    Error err;
    REQUIRE(t,
            parse("{\"task\":\"word\",\"manifests\":\"m.csv\",\"conditions\":[{\"name\":"
                  "\"natural\"}],\"trials_per_condition\":3,\"seed\":1}",
                  &d, &err) == 0,
            "%s", err.msg);
    CHECK(t, d.practice_feedback == 10 && d.practice_scored == 12 && d.practice_pass == 5,
          "practice 10/12/5");
    CHECK(t, d.n_breaks == 3 && d.breaks[0] == 0.25 && d.breaks[2] == 0.75, "breaks");
    CHECK(t, d.screening == SCREEN_WOODS && d.screening_trials == 6 && d.screening_pass == 5,
          "Woods 5/6");
    CHECK(t, d.replays == 0 && !d.feedback && d.calibration && d.mode == RESP_WORD && d.cant_tell,
          "plays once, no feedback, calibration, word mode");
    CHECK(t, strlen(d.sha256) == 64, "hash");
    exp_design_free(&d);
    REQUIRE(t,
            parse("{\"task\":\"word\",\"manifests\":\"m.csv\",\"conditions\":[{\"name\":"
                  "\"natural\"}],\"trials_per_condition\":3,\"seed\":1,\"screening\":"
                  "\"huggins\"}",
                  &d, &err) == 0,
            "%s", err.msg);
    CHECK(t, d.screening == SCREEN_HUGGINS && d.screening_pass == 6, "Huggins 6/6");
    exp_design_free(&d);
}

TEST(exp_design_errors_are_clear) {
    static const char *const cases[][2] = {
        {"{\"task\":\"word\",\"manifests\":\"m\",\"conditions\":[{\"name\":\"n\"}],"
         "\"trials_per_condition\":1,\"seed\":1,\"replay\":2}",
         "unknown key \"replay\""},
        {"{\"task\":\"word\",\"manifests\":\"m\",\"conditions\":[{\"name\":\"n\"}],"
         "\"trials_per_condition\":1}",
         "\"seed\""},
        {"{\"task\":\"word\",\"task\":\"x\"}", "d.json:1:"},
        {"{\"task\":\"word\",\"manifests\":\"m\",\"conditions\":[{\"name\":\"catch\"}],"
         "\"trials_per_condition\":1,\"seed\":1}",
         "reserved"},
        {"{\"task\":\"word\",\"manifests\":\"m\",\"conditions\":[{\"name\":\"n\"}],"
         "\"trials_per_condition\":1,\"seed\":1,\"breaks\":[0.5,0.25]}",
         "increasing"},
        {"{\"task\":\"wo rd\",\"manifests\":\"m\",\"conditions\":[{\"name\":\"n\"}],"
         "\"trials_per_condition\":1,\"seed\":1}",
         "BIDS"},
        {"{\"task\":\"word\",\"manifests\":\"m\",\"conditions\":[{\"name\":\"x\",\"stage\":"
         "\"relu4\"}],\"trials_per_condition\":1,\"seed\":1}",
         "\"model\""},
        {"{\"task\":\"word\",\"manifests\":\"m\",\"conditions\":[{\"name\":\"n\"}],"
         "\"trials_per_condition\":1,\"seed\":1,\"practice\":{\"scored_trials\":2,"
         "\"pass_correct\":3}}",
         "pass_correct"},
        {"{\"task\":\"word\",\"manifests\":\"m\",\"conditions\":[{\"name\":\"n\"}],"
         "\"trials_per_condition\":1,\"seed\":1,\"response\":{\"vocabulary\":[\"a\",\"A\"]}}",
         "twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Design d;
        Error err = {{0}};
        CHECK(t, parse(cases[i][0], &d, &err) != 0, "case %zu accepted", i);
        CHECK(t, strstr(err.msg, cases[i][1]) != NULL, "case %zu: '%s' lacks '%s'", i, err.msg,
              cases[i][1]);
        CHECK(t, strncmp(err.msg, "d.json", 6) == 0, "case %zu names the file: %s", i, err.msg);
    }
}

TEST(exp_vocab_completion_prefix_then_substring) {
    const char *v[] = {"apple", "grape", "Apricot", "pineapple", "map"};
    int idx[8];
    int n = exp_vocab_matches(v, 5, "ap", idx, 8);
    REQUIRE(t, n == 5, "matches %d", n);
    CHECK(t, idx[0] == 0 && idx[1] == 2, "prefix matches first (case-insensitive)");
    CHECK(t, idx[2] == 1 && idx[3] == 3 && idx[4] == 4, "then substring matches");
    CHECK(t, exp_vocab_matches(v, 5, "", idx, 8) == 0, "nothing typed, nothing listed");
    CHECK(t, exp_vocab_matches(v, 5, "ap", idx, 2) == 2, "max respected");
    CHECK(t, exp_vocab_find(v, 5, "APRICOT") == 2 && exp_vocab_find(v, 5, "apri") == -1,
          "exact only");
}

/* ----------------------------------------------------- counterbalancing */

TEST(exp_counterbalancing_over_24_participants) {
    Fixture f;
    REQUIRE(t, expfx_make(t, &BASIC, "cb", &f) == 0, "fixture");
    REQUIRE(t, expfx_build(&f, 24) == 0, "build");
    enum { P = 24, K = 3 };
    const char *conds[K] = {"natural", "m_relu1", "m_relu4"};
    int count[64][K] = {{0}}, seed_use[64][2] = {{0}}, same_order = 0;
    char first_order[64][8];
    for (int p = 1; p <= P; p++) {
        char id[16], path[1024];
        snprintf(id, sizeof id, "%02d", p);
        expfx_list_path(&f, id, path, sizeof path);
        Tsv l;
        REQUIRE(t, fx_tsv_load(path, &l) == 0, "list %s", path);
        REQUIRE(t, l.n == 3 + 12 + 2, "participant %d: %d trials", p, l.n);
        int per_cond[K] = {0}, seen[64] = {0}, n_catch = 0;
        for (int i = 0; i < l.n; i++) {
            char **r = l.f[i];
            int clip = atoi(r[4] + 1);
            CHECK(t, atoi(r[0]) == i + 1, "trial numbers in order");
            CHECK(t, !seen[clip]++, "participant %d hears clip %s twice", p, r[4]);
            if (strcmp(r[2], "main") != 0) continue;
            if (strcmp(r[3], "catch") == 0) {
                n_catch++;
                continue;
            }
            for (int k = 0; k < K; k++)
                if (strcmp(r[3], conds[k]) == 0) per_cond[k]++, count[clip][k]++;
            if (strcmp(r[9], "n/a") != 0) seed_use[clip][atoi(r[9])]++;
            if (p == 1 && i == 3) snprintf(first_order[0], 8, "%s", r[4]);
            if (p > 1 && i == 3 && strcmp(first_order[0], r[4]) == 0) same_order++;
        }
        for (int k = 0; k < K; k++)
            CHECK(t, per_cond[k] == 4, "participant %d: %d trials of %s", p, per_cond[k], conds[k]);
        CHECK(t, n_catch == 2, "participant %d: %d catch trials", p, n_catch);
        fx_tsv_free(&l);
    }
    int main_clips = 0;
    for (int c = 0; c < 64; c++) {
        if (!count[c][0] && !count[c][1] && !count[c][2]) continue;
        main_clips++;
        for (int k = 0; k < K; k++)
            CHECK(t, count[c][k] == P / K, "clip c%02d heard %d times as %s, want %d", c,
                  count[c][k], conds[k], P / K);
        if (count[c][1]) CHECK(t, seed_use[c][0] && seed_use[c][1], "clip %d: both seeds used", c);
    }
    CHECK(t, main_clips == 12, "%d main clips", main_clips);
    CHECK(t, same_order < P - 1, "orders are shuffled per participant");

    /* Building more participants leaves existing lists byte-identical. */
    char p1[1024], p2[1024];
    expfx_list_path(&f, "05", p1, sizeof p1);
    char *before = expfx_slurp(p1, NULL);
    REQUIRE(t, expfx_build(&f, 30) == 0, "rebuild with 30");
    char *after = expfx_slurp(p1, NULL);
    CHECK(t, before && after && strcmp(before, after) == 0, "list 05 unchanged");
    expfx_list_path(&f, "30", p2, sizeof p2);
    CHECK(t, access(p2, F_OK) == 0, "list 30 exists");
    free(before);
    free(after);
    snprintf(p1, sizeof p1, "%s/build.json", f.lists);
    char *bj = expfx_slurp(p1, NULL);
    CHECK(t, bj && strstr(bj, "\"seed\": 7") && strstr(bj, "\"design_sha256\""),
          "build.json records the seed and design hash");
    free(bj);
}

TEST(exp_build_refuses_impossible_or_changed_lists) {
    Fixture f;
    FixtureSpec s = BASIC;
    s.with_metamers = 10; /* 12 clips with all metamers are needed */
    REQUIRE(t, expfx_make(t, &s, "few", &f) == 0, "fixture");
    char out[4096], n[] = "2";
    char *argv[] = {"build", "--design", f.design, "--participants", n, NULL};
    CHECK(t,
          fx_quiet_cmd(experiment_cmd_build, 5, argv, out, sizeof out) != 0 &&
              strstr(out, "metamers experiment build: not enough source clips") &&
              strstr(out, "10 available, 12 needed"),
          "%s", out);

    REQUIRE(t, expfx_make(t, &BASIC, "chg", &f) == 0, "fixture");
    REQUIRE(t, expfx_build(&f, 2) == 0, "build");
    char *json = expfx_slurp(f.design, NULL);
    char *seed = strstr(json, "\"seed\": 7");
    REQUIRE(t, seed != NULL, "seed in design");
    seed[8] = '8';
    Error err;
    atomic_write_file(f.design, json, strlen(json), 0644, &err);
    free(json);
    char *argv2[] = {"build", "--design", f.design, "--participants", n, NULL};
    CHECK(t,
          fx_quiet_cmd(experiment_cmd_build, 5, argv2, out, sizeof out) != 0 &&
              strstr(out, "exists and differs"),
          "%s", out);
    /* The old lists stay, and run refuses the changed design. */
    CHECK(t,
          expfx_run_observer(&f, "01", "oracle", NULL, NULL, out, sizeof out) != 0 &&
              strstr(out, "changed since its trial lists"),
          "%s", out);
}

/* --------------------------------------------------- simulated sessions */

TEST(exp_oracle_session_logs_every_trial_in_list_order) {
    Fixture f;
    REQUIRE(t, expfx_make(t, &BASIC, "or", &f) == 0, "fixture");
    REQUIRE(t, expfx_build(&f, 3) == 0, "build");
    char out[4096], log[1024], list[1024];
    REQUIRE(t, expfx_run_observer(&f, "2", "oracle", NULL, NULL, out, sizeof out) == 0, "%s", out);
    CHECK(t, strstr(out, "sub-02 run 1 complete: 17 trials, main accuracy 1.000"), "%s", out);
    expfx_log_path(&f, "02", log, sizeof log);
    expfx_list_path(&f, "02", list, sizeof list);
    Tsv g, l;
    REQUIRE(t, fx_tsv_load(log, &g) == 0 && fx_tsv_load(list, &l) == 0, "read back");
    REQUIRE(t, g.n == l.n && g.partial == 0, "%d rows for %d trials", g.n, l.n);
    for (int i = 0; i < g.n; i++) {
        CHECK(t,
              strcmp(g.f[i][0], l.f[i][0]) == 0 && strcmp(g.f[i][3], l.f[i][4]) == 0 &&
                  strcmp(g.f[i][4], l.f[i][5]) == 0,
              "row %d matches the list", i);
        CHECK(t, strcmp(g.f[i][9], l.f[i][8]) == 0 && strcmp(g.f[i][10], "1") == 0,
              "oracle answers the label");
        CHECK(t, strcmp(g.f[i][11], "n/a") == 0 && strcmp(g.f[i][14], "1") == 0,
              "rt n/a, session 1");
    }
    fx_tsv_free(&g);
    fx_tsv_free(&l);
    struct stat st;
    CHECK(t, stat(log, &st) == 0 && (st.st_mode & 0777) == 0600, "log mode %o", st.st_mode & 0777);
    char side[1100];
    snprintf(side, sizeof side, "%.*s.json", (int)strlen(log) - 4, log);
    char *js = expfx_slurp(side, NULL);
    CHECK(t,
          js && strstr(js, "\"DesignSHA256\"") && strstr(js, "\"SoftwareVersion\"") &&
              strstr(js, "\"observer\": \"oracle\"") && strstr(js, "\"Description\""),
          "sidecar: %s", js ? js : "(missing)");
    free(js);
    CHECK(t, stat(side, &st) == 0 && (st.st_mode & 0777) == 0600, "sidecar mode");
    CHECK(t,
          expfx_run_observer(&f, "02", "oracle", NULL, NULL, out, sizeof out) != 0 &&
              strstr(out, "already complete"),
          "second run: %s", out);
    CHECK(t,
          expfx_run_observer(&f, "09", "oracle", NULL, NULL, out, sizeof out) != 0 &&
              strstr(out, "no trial list for sub-09"),
          "no list: %s", out);
    char *human[] = {"run", "--design", f.design, "--subject", "01", "--data-dir", f.data, NULL};
    CHECK(t,
          fx_quiet_cmd(experiment_cmd_run, 7, human, out, sizeof out) != 0 &&
              strstr(out, "needs a terminal"),
          "human without a tty: %s", out);
}

TEST(exp_half_written_last_line_is_repaired_on_resume) {
    Fixture f;
    REQUIRE(t, expfx_make(t, &BASIC, "rep", &f) == 0, "fixture");
    REQUIRE(t, expfx_build(&f, 1) == 0, "build");
    char out[4096], log[1024];
    REQUIRE(t, expfx_run_observer(&f, "01", "oracle,lapse=0.3", NULL, NULL, out, sizeof out) == 0,
            "%s", out);
    expfx_log_path(&f, "01", log, sizeof log);
    size_t n;
    char *full = expfx_slurp(log, &n);
    REQUIRE(t, full != NULL, "log");
    /* Keep 10 rows, then half of the 11th, as a crash in write() leaves it. */
    char *p = full;
    for (int i = 0; i < 11; i++) p = strchr(p, '\n') + 1;
    size_t keep = (size_t)(p - full), half = (size_t)(strchr(p, '\n') - p) / 2;
    int fd = open(log, O_WRONLY | O_TRUNC);
    REQUIRE(t, fd >= 0 && write(fd, full, keep + half) == (ssize_t)(keep + half), "truncate");
    close(fd);
    REQUIRE(t, expfx_run_observer(&f, "01", "oracle,lapse=0.3", NULL, NULL, out, sizeof out) == 0,
            "resume: %s", out);
    CHECK(t, strstr(out, "half-written last row"), "the repair is reported: %s", out);
    Tsv g, h;
    REQUIRE(t, fx_tsv_load(log, &g) == 0, "read");
    CHECK(t, g.partial == 0 && g.n == 17, "repaired and completed: %d rows, %zu partial", g.n,
          g.partial);
    /* Same answers as the uninterrupted run (lapses depend on the trial only). */
    char ref[1100];
    snprintf(ref, sizeof ref, "%s.ref", log);
    atomic_write_file(ref, full, n, 0600, &(Error){{0}});
    REQUIRE(t, fx_tsv_load(ref, &h) == 0 && h.n == 17, "reference");
    for (int i = 0; i < g.n; i++) {
        CHECK(t, strcmp(g.f[i][0], h.f[i][0]) == 0 && strcmp(g.f[i][9], h.f[i][9]) == 0,
              "row %d: %s/%s vs %s/%s", i, g.f[i][0], g.f[i][9], h.f[i][0], h.f[i][9]);
        CHECK(t, strcmp(g.f[i][14], i < 10 ? "1" : "2") == 0, "row %d session %s", i, g.f[i][14]);
    }
    fx_tsv_free(&g);
    fx_tsv_free(&h);
    free(full);
}

TEST(exp_log_rejects_a_foreign_list_and_keeps_the_file) {
    Fixture f;
    REQUIRE(t, expfx_make(t, &BASIC, "for", &f) == 0, "fixture");
    REQUIRE(t, expfx_build(&f, 2) == 0, "build");
    char out[4096], log1[1024], log2[1024], list2[1024];
    REQUIRE(t, expfx_run_observer(&f, "01", "oracle", NULL, NULL, out, sizeof out) == 0, "%s", out);
    expfx_log_path(&f, "01", log1, sizeof log1);
    expfx_log_path(&f, "02", log2, sizeof log2);
    expfx_list_path(&f, "02", list2, sizeof list2);
    TrialList l;
    TrialLog g;
    Error err;
    REQUIRE(t, exp_trials_read(list2, &l, &err) == 0, "%s", err.msg);
    char beh[1024];
    REQUIRE(t, subjects_beh_dir(f.data, "02", beh, sizeof beh, &err) == 0, "%s", err.msg);
    size_t n1 = 0, n2 = 0;
    char *before = expfx_slurp(log1, &n1);
    CHECK(t, exp_triallog_open(log1, &l, &g, &err) != 0 && strstr(err.msg, "another list"), "%s",
          err.msg);
    char *after = expfx_slurp(log1, &n2);
    CHECK(t, n1 == n2 && memcmp(before, after, n1) == 0, "file untouched");
    free(before);
    free(after);
    /* Two sessions of one participant cannot run at once. */
    REQUIRE(t, exp_triallog_open(log2, &l, &g, &err) == 0, "%s", err.msg);
    CHECK(t,
          expfx_run_observer(&f, "02", "oracle", NULL, NULL, out, sizeof out) != 0 &&
              strstr(out, "in use by another session"),
          "%s", out);
    exp_triallog_close(&g);
    exp_trials_free(&l);
}

TEST(exp_table_observer_answers_from_predictions) {
    Fixture f;
    REQUIRE(t, expfx_make(t, &BASIC, "tab", &f) == 0, "fixture");
    REQUIRE(t, expfx_build(&f, 3) == 0, "build");
    char list[1024], pred[1024], out[4096], log[1024];
    expfx_list_path(&f, "01", list, sizeof list);
    Tsv l;
    REQUIRE(t, fx_tsv_load(list, &l) == 0, "list");
    /* Natural clips by clip_id; metamers by path (relative to the table). */
    size_t cap = 1 << 16, len = 0;
    char *csv = xmalloc(cap);
    len += (size_t)snprintf(csv, cap, "clip_id,task,label,top1,p_top1,correct,path\n");
    for (int i = 0; i < l.n; i++) {
        int natural = strcmp(l.f[i][6], "n/a") == 0;
        const char *answer = i % 2 ? l.f[i][8] : "plum";
        len += (size_t)snprintf(csv + len, cap - len, "%s,word,%s,%s,0.9,0,%s%s\n",
                                natural ? l.f[i][4] : "", l.f[i][8], answer, natural ? "" : "../",
                                natural ? "" : l.f[i][5]);
    }
    snprintf(pred, sizeof pred, "%s/preds/p.csv", f.dir);
    Error err;
    char pdir[1024];
    snprintf(pdir, sizeof pdir, "%s/preds", f.dir);
    make_dirs(pdir, 0755, &err);
    atomic_write_file(pred, csv, len, 0644, &err);
    char spec[1100];
    snprintf(spec, sizeof spec, "table:%s", pred);
    REQUIRE(t, expfx_run_observer(&f, "01", spec, NULL, NULL, out, sizeof out) == 0, "%s", out);
    expfx_log_path(&f, "01", log, sizeof log);
    Tsv g;
    REQUIRE(t, fx_tsv_load(log, &g) == 0 && g.n == l.n, "all trials");
    for (int i = 0; i < g.n; i++)
        CHECK(t, strcmp(g.f[i][9], i % 2 ? l.f[i][8] : "plum") == 0, "trial %d: %s", i + 1,
              g.f[i][9]);
    fx_tsv_free(&g);
    /* A missing prediction is an error before the first trial. */
    len = (size_t)snprintf(csv, cap, "clip_id,task,label,top1\n%s,word,x,plum\n", l.f[0][4]);
    atomic_write_file(pred, csv, len, 0644, &err);
    CHECK(t,
          expfx_run_observer(&f, "02", spec, NULL, NULL, out, sizeof out) != 0 &&
              strstr(out, "has no prediction for 16 of 17 trials"),
          "%s", out);
    CHECK(t,
          expfx_run_observer(&f, "03", "model:/nonexistent.safetensors", NULL, NULL, out,
                             sizeof out) != 0 &&
              strstr(out, "/nonexistent.safetensors"),
          "model: %s", out);
    fx_tsv_free(&l);
    free(csv);
}

TEST(exp_file_audio_is_sample_identical_in_trial_order) {
    Fixture f;
    FixtureSpec s = BASIC;
    s.trials_per_condition = 2, s.catch_trials = 1;
    REQUIRE(t, expfx_make(t, &s, "aud", &f) == 0, "fixture");
    REQUIRE(t, expfx_build(&f, 1) == 0, "build");
    char out[4096], wav[1024], opt[1100], list[1024];
    snprintf(wav, sizeof wav, "%s/played.wav", f.dir);
    snprintf(opt, sizeof opt, "file:%s", wav);
    REQUIRE(t, expfx_run_observer(&f, "01", "oracle", "--audio", opt, out, sizeof out) == 0, "%s",
            out);
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(wav, SFM_READ, &info);
    REQUIRE(t, sf != NULL, "played.wav readable");
    CHECK(t, info.channels == 2 && info.samplerate == 8000, "stereo at the stimuli's rate");
    float *played = xmalloc(sizeof(float) * 2 * (size_t)info.frames);
    sf_readf_float(sf, played, info.frames);
    sf_close(sf);
    expfx_list_path(&f, "01", list, sizeof list);
    Tsv l;
    REQUIRE(t, fx_tsv_load(list, &l) == 0, "list");
    int64_t at = 0, mismatches = 0;
    for (int i = 0; i < l.n; i++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", f.dir, l.f[i][5]);
        Audio a;
        Error err;
        REQUIRE(t, audio_read(path, 0, 0, &a, &err) == 0, "%s", err.msg);
        for (int64_t j = 0; j < a.n && at + j < info.frames; j++)
            mismatches +=
                played[2 * (at + j)] != a.samples[j] || played[2 * (at + j) + 1] != a.samples[j];
        at += a.n;
        audio_free(&a);
    }
    CHECK(t, at == info.frames, "%lld frames played, stimuli have %lld", (long long)info.frames,
          (long long)at);
    CHECK(t, mismatches == 0, "%lld samples differ", (long long)mismatches);
    fx_tsv_free(&l);
    free(played);
}

/* ----------------------------------------------------------- audio & sounds */

TEST(exp_audio_device_errors_come_before_the_session) {
    AudioOut *a = NULL;
    Error err = {{0}};
    /* This machine has no sound card; on one that has, "no such device"
     * still must fail by name. */
    CHECK(t,
          exp_audio_out_open(NULL, "no-such-device-xyz", 0, 0, &a, &err) != 0 &&
              strstr(err.msg, "no-such-device-xyz"),
          "%s", err.msg);
    CHECK(t, exp_audio_out_open("wav:x", NULL, 0, 0, &a, &err) != 0 && strstr(err.msg, "file:PATH"),
          "%s", err.msg);
    char out[4096];
    char *argv[] = {"devices", NULL};
    int rc = fx_quiet_cmd(experiment_cmd_devices, 1, argv, out, sizeof out);
    CHECK(t, rc == 0 ? strstr(out, "default") != NULL : strstr(out, "no audio output") != NULL,
          "devices: %s", out);
    CHECK(t, !strstr(out, "ALSA lib"), "no ALSA noise: %s", out);
}

static double rms_range(const Sound *s, int ch, int64_t from, int64_t n) {
    double acc = 0;
    for (int64_t i = from; i < from + n; i++) acc += (double)s->x[2 * i + ch] * s->x[2 * i + ch];
    return sqrt(acc / n);
}

TEST(exp_screening_sounds_woods_and_huggins) {
    int rate = 8000;
    Sound s;
    exp_sound_woods(&s, rate, 0.1, 1, 2);
    REQUIRE(t, s.channels == 2 && s.frames == 3 * rate + rate, "3 x 1 s + 2 x 0.5 s");
    int64_t stride = rate + rate / 2, mid = rate / 4;
    double r0 = rms_range(&s, 0, mid, rate / 2), r1 = rms_range(&s, 0, stride + mid, rate / 2);
    CHECK(t, fabs(20 * log10(r1 / r0) + 6.02) < 0.1, "target is 6 dB softer (%.2f dB)",
          20 * log10(r1 / r0));
    int anti = 1, same = 1;
    for (int64_t i = 0; i < rate; i++) {
        anti &= s.x[2 * (2 * stride + i)] == -s.x[2 * (2 * stride + i) + 1];
        same &= s.x[2 * i] == s.x[2 * i + 1];
    }
    CHECK(t, anti && same, "interval 3 anti-phase, interval 1 in phase");
    exp_sound_free(&s);
    Error err;
    REQUIRE(t, exp_sound_huggins(&s, rate, 0.1, 0, 5, &err) == 0, "%s", err.msg);
    double diff0 = 0, diff_other = 0;
    for (int64_t i = 0; i < rate; i++) {
        double d0 = s.x[2 * i] - s.x[2 * i + 1],
               d1 = s.x[2 * (2 * rate + i)] - s.x[2 * (2 * rate + i) + 1];
        diff0 += d0 * d0, diff_other += d1 * d1;
    }
    /* L - R is twice the inverted band: 72 Hz of 4 kHz -> rms ~ 2 * 0.1 * sqrt(0.018). */
    double band = sqrt(diff0 / rate);
    CHECK(t, diff_other == 0, "non-target noises identical in both ears");
    CHECK(t, band > 0.018 && band < 0.036, "band difference rms %.4f", band);
    exp_sound_free(&s);
    int hits[3] = {0};
    for (int i = 0; i < 300; i++) {
        int target, anti2;
        exp_screening_plan(11, i, &target, &anti2);
        CHECK(t, target != anti2 && target >= 0 && target < 3 && anti2 >= 0 && anti2 < 3, "plan");
        hits[target]++;
    }
    CHECK(t, hits[0] > 70 && hits[1] > 70 && hits[2] > 70, "targets spread %d %d %d", hits[0],
          hits[1], hits[2]);
}

TEST(exp_simulated_observer_gate_is_recorded_not_enforced) {
    Fixture f;
    FixtureSpec s = BASIC;
    s.practice_pass = 2;
    REQUIRE(t, expfx_make(t, &s, "gate", &f) == 0 && expfx_build(&f, 1) == 0, "fixture");
    char out[4096];
    /* lapse=1: every answer is a random word, so the practice gate fails. */
    REQUIRE(t,
            expfx_run_observer(&f, "01", "oracle,lapse=1,seed=3", NULL, NULL, out, sizeof out) == 0,
            "%s", out);
    Participant p;
    Error err;
    REQUIRE(t, subjects_get(f.data, "01", &p, &err) == 0, "%s", err.msg);
    CHECK(t,
          strcmp(p.practice, "fail") == 0 && !p.excluded && p.sessions == 1 &&
              strcmp(p.observer, "oracle,lapse=1,seed=3") == 0,
          "practice %s excluded %d observer %s", p.practice, p.excluded, p.observer);
    CHECK(t, strstr(out, "complete: 17 trials"), "a simulated observer goes on: %s", out);
    /* The same ID with another observer is refused. */
    CHECK(t,
          expfx_run_observer(&f, "01", "oracle", NULL, NULL, out, sizeof out) != 0 &&
              strstr(out, "registered for observer"),
          "%s", out);
}

TEST(exp_audio_callback_plays_stereo_clips_and_reports_onset) {
    AudioOut *a = exp_audio_out_fake(8000, 0.02);
    float mono[100], out[2 * 64];
    for (int i = 0; i < 100; i++) mono[i] = (float)(i - 50) / 40; /* beyond +-1 at the ends */
    Sound s = {mono, 100, 1};
    Error err;
    CHECK(t, !exp_audio_out_busy(a), "idle at first");
    double before = now_seconds();
    REQUIRE(t, exp_audio_out_play(a, &s, &err) == 0, "play");
    CHECK(t, exp_audio_out_busy(a), "busy once requested, before the callback ran");
    exp_audio_out_pump(a, out, 64, 0.05);
    double onset = exp_audio_out_onset(a);
    CHECK(t, onset >= before + 0.05 && onset < now_seconds() + 0.06, "onset includes the DAC delay");
    int ok = 1;
    for (int i = 0; i < 64; i++) {
        float want = mono[i] < -1 ? -1 : mono[i] > 1 ? 1 : mono[i];
        ok &= out[2 * i] == want && out[2 * i + 1] == want;
    }
    CHECK(t, ok, "first buffer: the clip on both ears, clipped to +-1");
    CHECK(t, exp_audio_out_busy(a), "still playing");
    exp_audio_out_pump(a, out, 64, 0.05);
    ok = 1;
    for (int i = 0; i < 64; i++) {
        float want = i < 36 ? (mono[64 + i] > 1 ? 1 : mono[64 + i]) : 0;
        ok &= out[2 * i] == want && out[2 * i + 1] == want;
    }
    CHECK(t, ok, "second buffer: the rest, then silence");
    CHECK(t, !exp_audio_out_busy(a), "done after the last sample");
    /* A replay requested mid-sound restarts it; stereo sounds keep their ears. */
    float st[8] = {0.1f, -0.1f, 0.2f, -0.2f, 0.3f, -0.3f, 0.4f, -0.4f};
    Sound s2 = {st, 4, 2};
    exp_audio_out_play(a, &s, &err);
    exp_audio_out_pump(a, out, 10, 0);
    exp_audio_out_play(a, &s2, &err);
    exp_audio_out_pump(a, out, 6, 0);
    CHECK(t, out[0] == 0.1f && out[1] == -0.1f && out[6] == 0.4f && out[7] == -0.4f &&
                 out[8] == 0 && out[11] == 0,
          "the new sound replaces the old one, left/right kept");
    CHECK(t, !exp_audio_out_busy(a), "finished");
    CHECK(t, exp_audio_out_close(a, &err) == 0, "close");
}

/* `--observer model:M`: a network on the fixture's 8 kHz, 25 ms clips (a
 * front end sized for them, a linear read-out with the vocabulary as its
 * classes) answers every trial with a vocabulary word. */
TEST(exp_model_observer_answers_with_vocabulary_words) {
    Fixture f;
    REQUIRE(t, expfx_make(t, &BASIC, "mo", &f) == 0, "fixture");
    REQUIRE(t, expfx_build(&f, 2) == 0, "build");
    FrontEndConfig fe = {.sr = 8000, .signal_size = 200, .n = 4, .low_lim = 50, .high_lim = 3500,
                         .sample_factor = 1, .env_sr = 400, .window_size = 41, .kaiser_beta = 5,
                         .comp_scale = 1, .comp_offset = 1e-8, .comp_power = 0.3, .comp_clip = 5};
    Error err = {{0}};
    Cochleagram *c = cochleagram_create(&fe, &err);
    REQUIRE(t, c, "%s", err.msg);
    char arch[512], model[700];
    snprintf(arch, sizeof arch,
             "{\"input\": [1, %d, %d], \"layers\": [{\"name\": \"flatten\", \"op\": "
             "\"flatten\"}, {\"name\": \"final\", \"op\": \"linear\", \"out\": %d}]}",
             cochleagram_channels(c), cochleagram_frames(c), EXPFX_VOCAB_N);
    cochleagram_free(c);
    Network net;
    REQUIRE(t, network_from_architecture(&net, arch, &fe, &err) == 0, "%s", err.msg);
    network_init_random(&net, 3);
    REQUIRE(t, network_set_classes(&net, 0, (char *const *)EXPFX_VOCAB, EXPFX_VOCAB_N, &err) == 0,
            "%s", err.msg);
    snprintf(model, sizeof model, "%s/m.safetensors", f.dir);
    REQUIRE(t, network_save(&net, model, NULL, &err) == 0, "%s", err.msg);
    network_free(&net);
    char spec[800], out[4096], log[1024];
    snprintf(spec, sizeof spec, "model:%s", model);
    REQUIRE(t, expfx_run_observer(&f, "01", spec, NULL, NULL, out, sizeof out) == 0, "%s", out);
    CHECK(t, strstr(out, "sub-01 run 1 complete: 17 trials"), "%s", out);
    expfx_log_path(&f, "01", log, sizeof log);
    Tsv g;
    REQUIRE(t, fx_tsv_load(log, &g) == 0, "read back");
    int words = 0; /* column 9 is `response` (see the runner's column list) */
    for (int i = 0; i < g.n; i++)
        for (int v = 0; v < EXPFX_VOCAB_N; v++) words += strcmp(g.f[i][9], EXPFX_VOCAB[v]) == 0;
    CHECK(t, g.n == 17 && words == g.n, "%d of %d responses are vocabulary words", words, g.n);
    fx_tsv_free(&g);
}
