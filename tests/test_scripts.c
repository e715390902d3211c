/* The scripts around the program, run as a user runs them (separate
 * processes, with the program built next to this test runner):
 * - scripts/demo end to end, small: the tiny stimulus set, a default-layout
 *   network trained for one epoch on it, 10 synthesis steps per metamer;
 *   what the user is told to look at exists, and a second run reuses all.
 * - model/export/export_pytorch.py: its plain-Python networks load, classify,
 *   and every stage matches its own pure-Python forward pass. */
#include <libgen.h>
#include <math.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/core.h"
#include "../stimuli/stimuli.h"
#include "test.h"

/* The program of this build: run_tests and metamers share $(BUILD). */
static const char *program(void) {
    static char path[PATH_MAX + 16];
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return NULL;
    self[n] = 0;
    snprintf(path, sizeof path, "%s/metamers", dirname(self));
    return access(path, X_OK) == 0 ? path : NULL;
}

/* Runs a shell command line, output to LOG; returns its exit status. */
static int sh(const char *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(const char *log, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[sizeof cmd + 1200];
    snprintf(full, sizeof full, "%s >'%s' 2>&1", cmd, log);
    fflush(stdout), fflush(stderr);
    int rc = system(full);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *slurp(const char *path) {
    char *data = NULL;
    size_t n;
    Error err;
    return read_file(path, &data, &n, &err) == 0 ? data : xstrdup("");
}

static bool exists(const char *dir, const char *name) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Every stage `metamers stages` lists has a row in metamers.csv: the
 * figure's word clip covers the trunk and the word branch, the genre clip
 * the genre branch. */
static void check_every_stage(TestCtx *t, const char *dir, const char *stages_txt) {
    char path[1200];
    snprintf(path, sizeof path, "%s/demo/metamers/metamers.csv", dir);
    char *csv = slurp(path), *list = slurp(stages_txt), *save = NULL;
    int n = 0;
    for (char *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char stage[200], op[64];
        if (sscanf(line, "%199s %63s", stage, op) != 2 || strcmp(stage, "stage") == 0) continue;
        char needle[260];
        snprintf(needle, sizeof needle, ",%s,", stage);
        CHECK(t, strstr(csv, needle), "metamers.csv has no row for stage %s", stage);
        n++;
    }
    CHECK(t, n >= 30, "only %d stages listed", n);
    free(csv), free(list);
}

TEST(demo_pipeline_tiny_and_reuse) {
    const char *bin = program();
    REQUIRE(t, bin, "no metamers program next to run_tests (make builds both)");
    const char *dir = test_tmpdir(t);
    char log[1100], model[1100], man[1100], stages[1100];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    snprintf(model, sizeof model, "%s/tiny.safetensors", dir);
    snprintf(man, sizeof man, "%s/demo/stimuli/manifest.csv", dir);
    snprintf(stages, sizeof stages, "%s/stages.txt", dir);
    /* The set goes where the demo keeps it, so the demo's own build resumes. */
    REQUIRE(t, sh(log, "'%s' stimuli build --recipe tiny --out '%s/demo/stimuli' --quiet", bin, dir) == 0,
            "stimuli build: %s", slurp(log));
    REQUIRE(t, sh(log, "'%s' train --manifest '%s' --out '%s' --epochs 1 --batch 8", bin, man, model) == 0,
            "train: %s", slurp(log));
    REQUIRE(t, sh(stages, "'%s' stages --model '%s'", bin, model) == 0, "stages");

    const char *demo = "METAMERS='%s' scripts/demo --model '%s' --recipe tiny --out '%s/demo' "
                       "--stages 2 --steps 10 --pairs 100 --observers 4";
    double t0 = now_seconds();
    int rc = sh(log, demo, bin, model, dir);
    double first = now_seconds() - t0;
    char *out = slurp(log);
    REQUIRE(t, rc == 0, "scripts/demo failed (%d): %s", rc, out);
    CHECK(t, strstr(out, "report/report.html") && strstr(out, "experiment run --design"),
          "the demo does not say where the report is or how to run a person: %s", out);
    free(out);
    char reportdir[1100];
    snprintf(reportdir, sizeof reportdir, "%s/demo", dir);
    CHECK(t, exists(reportdir, "report/report.html") && exists(reportdir, "report/report.md"),
          "no report");
    CHECK(t, exists(reportdir, "metamers-word.svg") && exists(reportdir, "metamers-genre.svg"),
          "no figures");
    check_every_stage(t, dir, stages);
    for (int s = 1; s <= 4; s++) {
        char name[200];
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "subjects/sub-%02d/beh/sub-%02d_task-%s_run-1_beh.tsv", s, s,
                     k ? "genre" : "word");
            CHECK(t, exists(reportdir, name), "no trial log %s", name);
        }
    }

    /* Again: every step is reused, no session is started again. */
    t0 = now_seconds();
    rc = sh(log, demo, bin, model, dir);
    double second = now_seconds() - t0;
    out = slurp(log);
    REQUIRE(t, rc == 0, "second run failed: %s", out);
    CHECK(t, strstr(out, "reused") && strstr(out, "0 sessions run"), "second run redid work: %s", out);
    CHECK(t, second < first, "second run took %.1f s, the first %.1f s", second, first);
    free(out);
}

/* A 2 s, 20 kHz clip: a few harmonics. */
static void write_clip(TestCtx *t, const char *path) {
    float *x = alloc_floats(40000);
    for (int i = 0; i < 40000; i++)
        x[i] = (float)(0.05 * (sin(0.07 * i) + sin(0.21 * i) + sin(0.5 * i)));
    Error err = {0};
    CHECK(t, audio_write_wav(path, x, 40000, 1, 20000, AUDIO_FLOAT32, NULL, &err) == 0, "%s", err.msg);
    free(x);
}

/* Exports the selftest network of one layout, then: stages lists both
 * branches' last layers, classify answers with the exported labels, and the
 * script's pure-Python forward pass reproduces `represent --stages all`. */
static void check_export(TestCtx *t, const char *bin, const char *layout, const char *last) {
    const char *dir = test_tmpdir(t);
    char log[1100], model[1100], clip[1100], rep[1100];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    snprintf(model, sizeof model, "%s/%s.safetensors", dir, layout);
    snprintf(clip, sizeof clip, "%s/clip.wav", dir);
    snprintf(rep, sizeof rep, "%s/%s-rep.safetensors", dir, layout);
    write_clip(t, clip);
    const char *py = "python3 model/export/export_pytorch.py";
    REQUIRE(t, sh(log, "%s --selftest '%s' --selftest-arch %s", py, model, layout) == 0,
            "%s selftest: %s", layout, slurp(log));
    REQUIRE(t, sh(log, "'%s' stages --model '%s'", bin, model) == 0, "stages: %s", slurp(log));
    char *out = slurp(log), word_last[100], genre_last[100];
    snprintf(word_last, sizeof word_last, "word/%s ", last);
    snprintf(genre_last, sizeof genre_last, "genre/%s ", last);
    CHECK(t, strstr(out, word_last) && strstr(out, genre_last), "%s stages: %s", layout, out);
    free(out);
    REQUIRE(t, sh(log, "'%s' classify --model '%s' --tsv --top 1 '%s'", bin, model, clip) == 0,
            "classify: %s", slurp(log));
    out = slurp(log);
    CHECK(t, strstr(out, "\tword\t1\t") && strstr(out, "\tgenre\t1\t") &&
                 (strstr(out, "\trock\t") || strstr(out, "\tjazz\t") || strstr(out, "\twaltz\t")),
          "%s classify: %s", layout, out);
    free(out);
    REQUIRE(t, sh(log, "'%s' represent --model '%s' --stages all '%s' -o '%s'", bin, model, clip, rep) == 0,
            "represent: %s", slurp(log));
    CHECK(t, sh(log, "%s --verify '%s' '%s'", py, model, rep) == 0, "%s: the C engine and the "
          "script's forward pass disagree:\n%s", layout, slurp(log));
}

TEST(export_pytorch_selftest_loads_and_matches) {
    const char *bin = program();
    REQUIRE(t, bin, "no metamers program next to run_tests (make builds both)");
    REQUIRE(t, system("command -v python3 >/dev/null") == 0,
            "python3 is missing (scripts/deps installs it)");
    check_export(t, bin, "cochcnn9", "final");
    check_export(t, bin, "kell2018", "fc_top");
}
