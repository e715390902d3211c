/* The synthesis tests' fixture (see synth_fixture.h). */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../model/model.h"
#include "../stimuli/stimuli.h"
#include "synth_fixture.h"
/* One task "a" (5 classes) and, with branched, a second task "b" on its own
 * branch from pool0. */
static const char *net_json =
    "{\"name\": \"t\", \"input\": [1, %d, %d], \"layers\": ["
    "{\"name\": \"bn0\", \"op\": \"batchnorm\"},"
    "{\"name\": \"conv0\", \"op\": \"conv2d\", \"out\": 8, \"kernel\": [3, 4], \"stride\": [1, 1]},"
    "{\"name\": \"relu0\", \"op\": \"relu\"},"
    "{\"name\": \"pool0\", \"op\": \"maxpool\", \"kernel\": [2, 2], \"stride\": [2, 2]},"
    "{\"name\": \"%sconv1\", \"op\": \"conv2d\", \"out\": 16, \"kernel\": [2, 3]},"
    "{\"name\": \"%srelu1\", \"op\": \"relu\"},"
    "{\"name\": \"%sflatten\", \"op\": \"flatten\"},"
    "{\"name\": \"%sfc\", \"op\": \"linear\", \"out\": 32},"
    "{\"name\": \"%srelufc\", \"op\": \"relu\"},"
    "{\"name\": \"%sfinal\", \"op\": \"linear\", \"out\": 5}%s],"
    "\"outputs\": {%s}}";

static const char *branch_b =
    ",{\"name\": \"b/pool\", \"op\": \"avgpool\", \"kernel\": [2, 3], \"stride\": [1, 2], \"input\": \"pool0\"},"
    "{\"name\": \"b/flatten\", \"op\": \"flatten\"},"
    "{\"name\": \"b/final\", \"op\": \"linear\", \"out\": 3}";

static int save_model(TestCtx *t, const char *path, bool branched) {
    Error err = {0};
    FrontEndConfig fe;
    front_end_config_preset("tiny", &fe, &err);
    Cochleagram *c = cochleagram_create(&fe, &err);
    char json[4096];
    const char *p = branched ? "a/" : "";
    snprintf(json, sizeof json, net_json, cochleagram_channels(c), cochleagram_frames(c), p, p, p, p, p,
             p, branched ? branch_b : "",
             branched ? "\"a\": \"a/final\", \"b\": \"b/final\"" : "\"a\": \"final\"");
    cochleagram_free(c);
    Network net;
    if (network_from_architecture(&net, json, &fe, &err) != 0)
        return test_fail(t, __FILE__, __LINE__, "%s", err.msg), -1;
    network_init_random(&net, 7);
    int rc = network_save(&net, path, NULL, &err);
    if (rc != 0) test_fail(t, __FILE__, __LINE__, "%s", err.msg);
    network_free(&net);
    return rc;
}

/* A varied "natural" clip: a gliding harmonic complex with its own pitch,
 * spectral tilt and amplitude modulation, plus a noise burst. */
static void make_clip(float *x, int n, int sr, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    double f0 = 90 + 300 * rng_uniform(&r), glide = rng_uniform(&r) - 0.5, tilt = 0.3 + 1.5 * rng_uniform(&r);
    double am = 2 + 14 * rng_uniform(&r), burst = rng_uniform(&r) * n, width = 0.05 * n + 0.2 * n * rng_uniform(&r);
    int harmonics = 2 + (int)(10 * rng_uniform(&r));
    for (int i = 0; i < n; i++) {
        double t = (double)i / sr, f = f0 * (1 + glide * t), v = 0;
        for (int h = 1; h <= harmonics && f * h < sr / 2.0; h++) v += sin(2 * M_PI * f * h * t + h) / pow(h, tilt);
        v *= 0.6 + 0.4 * sin(2 * M_PI * am * t);
        if (fabs(i - burst) < width) v += 0.7 * rng_normal(&r);
        x[i] = (float)v;
    }
}


/* model.safetensors, clips/c0..c{n-1}.wav (8 kHz, 2000 samples) and
 * manifest.csv (task a; with branched, c1 is a task-b clip). */
int sfx_make(TestCtx *t, SynthFixture *f, const char *name, int n_clips, bool branched) {
    snprintf(f->dir, sizeof f->dir, "%s/%s", test_tmpdir(t), name);
    snprintf(f->model, sizeof f->model, "%s/model.safetensors", f->dir);
    snprintf(f->manifest, sizeof f->manifest, "%s/manifest.csv", f->dir);
    char clips[600];
    snprintf(clips, sizeof clips, "%s/clips", f->dir);
    Error err = {0};
    if (make_dirs(clips, 0755, &err) != 0 || save_model(t, f->model, branched) != 0)
        return test_fail(t, __FILE__, __LINE__, "fixture: %s", err.msg), -1;
    FILE *m = fopen(f->manifest, "w");
    fprintf(m, "clip_id,path,task,label,source,speaker_or_style,snr_db,noise,split,seed\n");
    float x[2000];
    for (int k = 0; k < n_clips; k++) {
        char path[700];
        snprintf(path, sizeof path, "%s/c%d.wav", clips, k);
        make_clip(x, 2000, 8000, 100 + (uint64_t)k);
        if (audio_write_wav(path, x, 2000, 1, 8000, AUDIO_FLOAT32, NULL, &err) != 0)
            return fclose(m), test_fail(t, __FILE__, __LINE__, "%s", err.msg), -1;
        fprintf(m, "c%d,clips/c%d.wav,%s,x%d,import,s%d,inf,none,train,\n", k, k,
                branched && k % 2 == 1 ? "b" : "a", k % 3, k);
    }
    fclose(m);
    return 0;
}

/* Runs synth_cmd_synth/null/show in a child with stdout and stderr in files
 * under dir; returns the exit code. */
int sfx_run(const char *dir, int (*cmd)(int, char **), char **argv, char *out, size_t size) {
    char so[700], se[700];
    snprintf(so, sizeof so, "%s/stdout.txt", dir);
    snprintf(se, sizeof se, "%s/stderr.txt", dir);
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(so, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(se, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1), dup2(fe, 2);
        int argc = 0;
        while (argv[argc]) argc++;
        int rc = cmd(argc, argv);
        fflush(stdout), fflush(stderr);
        _exit(rc);
    }
    int status;
    waitpid(pid, &status, 0);
    if (out) {
        char *text = NULL;
        size_t n = 0;
        Error e;
        out[0] = 0;
        if (read_file(se, &text, &n, &e) == 0) snprintf(out, size, "%s", text);
        free(text);
        if (read_file(so, &text, &n, &e) == 0) snprintf(out + strlen(out), size - strlen(out), "%s", text);
        free(text);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *sfx_slurp(const char *path) {
    char *text = NULL;
    size_t n;
    Error e;
    if (read_file(path, &text, &n, &e) != 0) return NULL;
    return text;
}

/* Value of column `col` in row `row` (1-based after the header) of a CSV
 * without quoted commas in the columns asked for. */
bool sfx_csv_cell(const char *csv, int row, const char *col, char *buf, size_t size) {
    if (!csv) return false;
    int c = -1, k = 0;
    const char *p = csv;
    for (const char *s = csv; *s && *s != '\n'; k++) {
        size_t len = strcspn(s, ",\n");
        if (strlen(col) == len && !strncmp(s, col, len)) c = k;
        s += len + (s[len] == ',');
    }
    for (int r = 0; r < row && p; r++) p = strchr(p, '\n'), p = p ? p + 1 : NULL;
    if (c < 0 || !p || !*p) return false;
    for (k = 0; k < c; k++) {
        if (*p == '"') p = strchr(p + 1, '"') + 1;
        p += strcspn(p, ",\n");
        if (*p != ',') return false;
        p++;
    }
    size_t len = strcspn(p, ",\n");
    snprintf(buf, size, "%.*s", (int)len, p);
    return true;
}
