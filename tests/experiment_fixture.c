/* The experiment tests' fixture (see experiment_fixture.h): a tiny but
 * complete study on disk, quiet command runs, and TSV reading. */
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../experiment/internal.h"
#include "experiment_fixture.h"

const char *const EXPFX_VOCAB[] = {"apple",  "apricot", "banana", "berry", "cherry",
                                   "grape",  "lemon",   "lime",   "mango", "melon",
                                   "orange", "peach",   "pear",   "plum"};
const int EXPFX_VOCAB_N = 14;

char *expfx_slurp(const char *path, size_t *n) {
    char *data = NULL;
    size_t size = 0;
    Error err;
    if (read_file(path, &data, &size, &err) != 0) return NULL;
    if (n) *n = size;
    return data;
}

/* Plain writes (no fsync): the fixture is scratch data, and fsync per file
 * would make the tests slow on a real disk. */
static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Every clip differs (frequency and noise from its seed), so a mix-up of
 * two stimuli can never go unnoticed in a sample comparison. */
static int write_clip(const char *path, uint32_t seed) {
    float x[200];
    for (int i = 0; i < 200; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] =
            (float)(0.3 * sin(0.05 * (seed % 97 + 1) * i) + 0.01 * ((seed >> 8) / 8388608.0 - 1));
    }
    SF_INFO info = {.samplerate = 8000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf) return -1;
    sf_count_t w = sf_writef_float(sf, x, 200);
    return (sf_close(sf) == 0 && w == 200) ? 0 : -1;
}

static int write_stimuli(const FixtureSpec *s, const Fixture *f) {
    char path[1024], line[512];
    size_t cap = 65536, len = 0;
    char *man = xmalloc(cap), *met = xmalloc(cap);
    len += snprintf(man, cap,
                    "clip_id,path,task,label,source,speaker_or_style,snr_db,noise,split,seed\n");
    size_t mlen = (size_t)snprintf(met, cap, "clip,stage,seed,passed\n");
    int rc = 0;
    static const char *stages[] = {"relu1", "relu4"};
    for (int i = 0; i < s->clips && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/clips/c%02d.wav", f->dir, i);
        rc |= write_clip(path, 1000u + (uint32_t)i);
        snprintf(line, sizeof line, "c%02d,clips/c%02d.wav,word,%s,espeak,v%d,,none,test,%d\n", i,
                 i, EXPFX_VOCAB[i % (s->n_labels ? s->n_labels : EXPFX_VOCAB_N)], i % 3, i);
        len += (size_t)snprintf(man + len, cap - len, "%s", line);
        for (int k = 0; i < s->with_metamers && k < s->n_conds - 1; k++)
            for (int sd = 0; sd < s->seeds; sd++) {
                snprintf(path, sizeof path, "%s/met/%s/c%02d_s%d.wav", f->dir, stages[k], i, sd);
                rc |=
                    write_clip(path, 5000u + 100u * (uint32_t)i + 10u * (uint32_t)k + (uint32_t)sd);
                mlen +=
                    (size_t)snprintf(met + mlen, cap - mlen, "c%02d,%s,%d,1\n", i, stages[k], sd);
            }
    }
    snprintf(path, sizeof path, "%s/manifest.csv", f->dir);
    rc |= write_text(path, man);
    snprintf(path, sizeof path, "%s/met/metamers.csv", f->dir);
    rc |= write_text(path, met);
    free(man);
    free(met);
    return rc;
}

int expfx_make(TestCtx *t, const FixtureSpec *s, const char *name, Fixture *f) {
    snprintf(f->dir, sizeof f->dir, "%s/%s", test_tmpdir(t), name);
    snprintf(f->design, sizeof f->design, "%s/design.json", f->dir);
    snprintf(f->lists, sizeof f->lists, "%s/design_trials", f->dir);
    snprintf(f->data, sizeof f->data, "%s/subjects", f->dir);
    char path[1024];
    Error err;
    static const char *stages[] = {"relu1", "relu4"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/met/%s", f->dir, stages[k]);
        if (make_dirs(path, 0755, &err) != 0) return -1;
    }
    snprintf(path, sizeof path, "%s/clips", f->dir);
    if (make_dirs(path, 0755, &err) != 0 || write_stimuli(s, f) != 0) return -1;
    char conds[256] = "{\"name\":\"natural\"}";
    for (int k = 0; k < s->n_conds - 1; k++)
        snprintf(conds + strlen(conds), sizeof conds - strlen(conds),
                 ",{\"name\":\"m_%s\",\"stage\":\"%s\"}", stages[k], stages[k]);
    char json[2048];
    snprintf(
        json, sizeof json,
        "{\"task\": \"word\", \"manifests\": \"manifest.csv\",\n"
        " \"metamers\": [{\"model\": \"m\", \"csv\": \"met/metamers.csv\"}],\n"
        " \"conditions\": [%s],\n"
        " \"trials_per_condition\": %d, \"catch_trials\": %d,\n"
        " \"practice\": {\"feedback_trials\": %d, \"scored_trials\": %d, \"pass_correct\": %d},\n"
        " \"replays\": %d, \"screening\": %s, \"calibration\": %s,\n"
        " %s%s%s \"pause_ms\": 0, \"seed\": 7}\n",
        conds, s->trials_per_condition, s->catch_trials, s->practice_feedback, s->practice_scored,
        s->practice_pass, s->replays, s->screening ? s->screening : "\"none\"",
        s->calibration ? "true" : "false", s->response ? "\"response\": " : "",
        s->response ? s->response : "", s->response ? "," : "");
    return write_text(f->design, json);
}

int fx_quiet_cmd(int (*fn)(int, char **), int argc, char **argv, char *out, size_t cap) {
    fflush(stdout);
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved1 = dup(1), saved2 = dup(2);
    dup2(fileno(tmp), 1);
    dup2(fileno(tmp), 2);
    int rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved1, 1), dup2(saved2, 2), close(saved1), close(saved2);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = 0;
    fclose(tmp);
    return rc;
}

int expfx_build(const Fixture *f, int participants) {
    char n[16], out[4096];
    snprintf(n, sizeof n, "%d", participants);
    char *argv[] = {"build", "--design", (char *)f->design, "--participants", n, NULL};
    int rc = fx_quiet_cmd(experiment_cmd_build, 5, argv, out, sizeof out);
    if (rc) fprintf(stderr, "build failed: %s", out);
    return rc;
}

int expfx_run_observer(const Fixture *f, const char *id, const char *observer,
                       const char *extra_opt, const char *extra_val, char *out, size_t cap) {
    char *argv[] = {"run",
                    "--design",
                    (char *)f->design,
                    "--subject",
                    (char *)id,
                    "--data-dir",
                    (char *)f->data,
                    "--observer",
                    (char *)observer,
                    (char *)extra_opt,
                    (char *)extra_val,
                    NULL};
    return fx_quiet_cmd(experiment_cmd_run, extra_opt ? 11 : 9, argv, out, cap);
}

void expfx_log_path(const Fixture *f, const char *id, char *out, size_t cap) {
    snprintf(out, cap, "%s/sub-%s/beh/sub-%s_task-word_run-1_beh.tsv", f->data, id, id);
}

void expfx_list_path(const Fixture *f, const char *id, char *out, size_t cap) {
    snprintf(out, cap, "%s/sub-%s_trials.tsv", f->lists, id);
}

int fx_tsv_load(const char *path, Tsv *t) {
    memset(t, 0, sizeof *t);
    size_t n;
    t->buf = expfx_slurp(path, &n);
    if (!t->buf) return -1;
    size_t end = n;
    while (end > 0 && t->buf[end - 1] != '\n') end--;
    t->partial = n - end;
    t->buf[end] = 0;
    int lines = 0;
    for (size_t i = 0; i < end; i++) lines += t->buf[i] == '\n';
    t->f = calloc(lines + 1, sizeof *t->f);
    char *save = NULL, *line = strtok_r(t->buf, "\n", &save); /* header */
    while (line && (line = strtok_r(NULL, "\n", &save))) {
        t->nf = subjects_tsv_split(line, t->f[t->n], 16);
        t->n++;
    }
    return 0;
}

void fx_tsv_free(Tsv *t) {
    free(t->f);
    free(t->buf);
    memset(t, 0, sizeof *t);
}
