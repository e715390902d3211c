/* Faults (issue "Hardening"): a full disk while synthesis checkpoints or
 * writes its metamers, SIGKILL in the middle of saving a model or a
 * checkpoint, NaN/Inf in weights and in input audio. Each must end with a
 * clear one-line error and the previous files intact and loadable.
 * (The trial log's full disk and SIGKILL tests are in
 * test_experiment_session.c; audio_write_wav's full disk in test_audio.c.) */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../model/model.h"
#include "../stimuli/stimuli.h"
#include "../synth/synth.h"
#include "../synth/synth_internal.h"
#include "synth_fixture.h"
#include "test.h"

/* ------------------------------------------------------------ helpers */

/* Runs cmd in a child whose files may not grow past max_bytes (a full disk:
 * writes fail with EFBIG, SIGXFSZ ignored); output captured as sfx_run. */
static int run_with_file_limit(const char *dir, int (*cmd)(int, char **), char **argv, long max_bytes,
                               char *out, size_t cap) {
    char se[700];
    snprintf(se, sizeof se, "%s/limited-stderr.txt", dir);
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(se, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1), dup2(fd, 2);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {(rlim_t)max_bytes, (rlim_t)max_bytes};
        setrlimit(RLIMIT_FSIZE, &rl);
        int argc = 0;
        while (argv[argc]) argc++;
        int rc = cmd(argc, argv);
        fflush(NULL);
        _exit(rc);
    }
    int status;
    waitpid(pid, &status, 0);
    char *text = sfx_slurp(se);
    snprintf(out, cap, "%s", text ? text : "");
    free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* At most one line (a trailing newline allowed). */
static bool one_line(const char *s) {
    const char *nl = strchr(s, '\n');
    return !nl || !nl[1];
}

/* ------------------------------------------------- full disk in synthesis */

/* A checkpoint holds the wave (2000 floats) and the loss so far, so it
 * grows by 4 kB per 1000 steps: under a 14 kB file limit the one at step
 * 1000 fits and the one at step 2000 does not. CutRun is such a run: the
 * fixture's c0 at relu1, feather2023 (6000 steps), a checkpoint every 1000,
 * into <fixture>/out. */
typedef struct {
    SynthFixture f;
    char odir[700], ckpt[800];
    char *argv[24];
} CutRun;

static bool cut_run_make(TestCtx *t, CutRun *r, const char *name) {
    if (sfx_make(t, &r->f, name, 2, false) != 0) return false;
    snprintf(r->odir, sizeof r->odir, "%s/out", r->f.dir);
    snprintf(r->ckpt, sizeof r->ckpt, "%s/relu1/c0_s0.ckpt.safetensors", r->odir);
    char *argv[] = {"synth", "--model", r->f.model, "--manifest", r->f.manifest, "--stages", "relu1",
                    "--clips", "c0", "--preset", "feather2023", "--steps", "1500", "--rounds", "4",
                    "--checkpoint-every", "1000", "--out", r->odir, "--quiet", "--threads", "1", NULL};
    memcpy(r->argv, argv, sizeof argv);
    return true;
}

/* Runs it under the 14 kB limit: it stops after the step-1000 checkpoint. */
static int cut_run_stop(CutRun *r, char *out, size_t n) {
    return run_with_file_limit(r->f.dir, synth_cmd_synth, r->argv, 14000, out, n);
}

/* The run must stop with the file and the reason, keep the step-1000
 * checkpoint loadable, and resume from it once there is room. */
TEST(synth_full_disk_while_checkpointing_keeps_the_last_checkpoint) {
    CutRun r;
    if (!cut_run_make(t, &r, "fullckpt")) return;
    char out[4096], *odir = r.odir, *ckpt = r.ckpt;
    int rc = cut_run_stop(&r, out, sizeof out);
    CHECK(t, rc == 1, "exit %d: %s", rc, out);
    CHECK(t, strstr(out, ckpt) && strstr(out, "File too large") &&
                 strstr(out, "previous file left unchanged") && one_line(out),
          "message: %s", out);
    Safetensors st;
    Error err = {{0}};
    REQUIRE(t, safetensors_open(&st, ckpt, &err) == 0, "checkpoint unreadable: %s", err.msg);
    const char *step = safetensors_metadata(&st, "step");
    CHECK(t, step && strcmp(step, "1000") == 0, "checkpoint at step %s", step ? step : "?");
    safetensors_close(&st);
    char dir[800];
    snprintf(dir, sizeof dir, "%s/relu1", odir);
    CHECK(t, test_count_names(dir, ".tmp-", NULL, 0) == 0, "temp files left in %s", dir);
    REQUIRE(t, sfx_run(r.f.dir, synth_cmd_synth, r.argv, out, sizeof out) == 0, "resume: %s", out);
    CHECK(t, !strstr(out, "other FFTW plans"), "same plans, yet: %s", out);
    char csv[800], v[64];
    snprintf(csv, sizeof csv, "%s/metamers.csv", odir);
    char *rows = sfx_slurp(csv);
    CHECK(t, sfx_csv_cell(rows, 1, "iterations", v, sizeof v) && atoi(v) == 6000, "iterations %s", v);
    free(rows);
    CHECK(t, access(ckpt, F_OK) != 0, "checkpoint kept after success");
}

/* A checkpoint made under other FFTW plans (another machine, another plan
 * cache) still resumes, since the procedure is the same, but the run says
 * that the result will not be bit-identical to an uninterrupted one. The
 * checkpoint's plan id is overwritten in place to stand for another cache. */
TEST(synth_resume_under_other_fftw_plans_is_said) {
    CutRun r;
    if (!cut_run_make(t, &r, "otherplans")) return;
    char out[4096];
    REQUIRE(t, cut_run_stop(&r, out, sizeof out) == 1, "no stop at the file limit: %s", out);
    char *bytes = NULL;
    size_t n = 0;
    Error err = {{0}};
    REQUIRE(t, read_file(r.ckpt, &bytes, &n, &err) == 0, "%s", err.msg);
    const char *field = "\"fftw_plans\":\"";
    char *id = n > 8 ? memmem(bytes + 8, n - 8, field, strlen(field)) : NULL;
    REQUIRE(t, id && (size_t)(id - bytes) + strlen(field) + 16 < n, "no plan id in the checkpoint");
    memset(id + strlen(field), '0', 16);
    REQUIRE(t, atomic_write_file(r.ckpt, bytes, n, 0644, &err) == 0, "%s", err.msg);
    free(bytes);
    REQUIRE(t, sfx_run(r.f.dir, synth_cmd_synth, r.argv, out, sizeof out) == 0, "resume: %s", out);
    CHECK(t, strstr(out, "relu1 c0 s0 resumed at step 1000 under other FFTW plans") && one_line(out),
          "message: %s", out);
}

/* Metamers of c0 exist; adding c1 on a full disk (no room for a 8 kB WAV)
 * fails with the file named, and leaves c0's WAV and metamers.csv exactly
 * as they were, with no partial c1 output. */
TEST(synth_full_disk_while_writing_metamers_keeps_earlier_ones) {
    SynthFixture f;
    if (sfx_make(t, &f, "fullwav", 2, false) != 0) return;
    char out[4096], odir[700];
    snprintf(odir, sizeof odir, "%s/out", f.dir);
    char *argv[] = {"synth", "--model", f.model, "--manifest", f.manifest, "--stages", "relu1",
                    "--clips", "c0", "--preset", "fast", "--steps", "100", "--checkpoint-every", "0",
                    "--out", odir, "--quiet", "--threads", "1", NULL};
    REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, argv, out, sizeof out) == 0, "first run: %s", out);
    char csv[800], wav[800], keep_csv[800], keep_wav[800];
    snprintf(csv, sizeof csv, "%s/metamers.csv", odir);
    snprintf(wav, sizeof wav, "%s/relu1/c0_s0.wav", odir);
    snprintf(keep_csv, sizeof keep_csv, "%s/metamers.before.csv", f.dir);
    snprintf(keep_wav, sizeof keep_wav, "%s/c0.before.wav", f.dir);
    char *a = sfx_slurp(csv), *b = NULL;
    Error err = {{0}};
    size_t n = 0;
    REQUIRE(t, a && read_file(wav, &b, &n, &err) == 0, "first outputs");
    REQUIRE(t, atomic_write_file(keep_csv, a, strlen(a), 0644, &err) == 0 &&
                   atomic_write_file(keep_wav, b, n, 0644, &err) == 0,
            "%s", err.msg);
    free(a), free(b);
    argv[8] = "c0,c1";
    int rc = run_with_file_limit(f.dir, synth_cmd_synth, argv, 4000, out, sizeof out);
    CHECK(t, rc == 1 && strstr(out, "c1") && strstr(out, "File too large") && one_line(out),
          "exit %d: %s", rc, out);
    CHECK(t, test_same_file(csv, keep_csv), "metamers.csv changed by the failed run");
    CHECK(t, test_same_file(wav, keep_wav), "c0's WAV changed by the failed run");
    char p[800];
    snprintf(p, sizeof p, "%s/relu1/c1_s0.wav", odir);
    CHECK(t, access(p, F_OK) != 0, "a partial c1 WAV exists");
    snprintf(p, sizeof p, "%s/relu1", odir);
    CHECK(t, test_count_names(p, ".tmp-", NULL, 0) == 0 && test_count_names(odir, ".tmp-", NULL, 0) == 0, "temp files left behind");
    REQUIRE(t, sfx_run(f.dir, synth_cmd_synth, argv, out, sizeof out) == 0, "with room: %s", out);
    char *rows = sfx_slurp(csv), v[64];
    CHECK(t, sfx_csv_cell(rows, 2, "clip_id", v, sizeof v), "two rows after a rerun: %s", rows);
    free(rows);
}

/* A NaN in a clip of the manifest: the run stops before any synthesis with
 * the file, sample and time. */
TEST(synth_nan_in_a_clip_names_the_file) {
    SynthFixture f;
    if (sfx_make(t, &f, "nanclip", 2, false) != 0) return;
    float x[2000] = {0};
    char clip[700], out[4096], odir[700];
    snprintf(clip, sizeof clip, "%s/clips/c1.wav", f.dir);
    snprintf(odir, sizeof odir, "%s/out", f.dir);
    /* audio_write_wav refuses NaN (rightly), so patch the float in place. */
    Error err = {{0}};
    REQUIRE(t, audio_write_wav(clip, x, 2000, 1, 8000, AUDIO_FLOAT32, NULL, &err) == 0, "%s", err.msg);
    FILE *fp = fopen(clip, "r+b");
    long size = fp && fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    float nan = NAN;
    REQUIRE(t, size > 8000 && fseek(fp, size - (2000 - 1234) * 4, SEEK_SET) == 0 &&
                   fwrite(&nan, 4, 1, fp) == 1 && fclose(fp) == 0,
            "patch");
    char *argv[] = {"synth", "--model", f.model, "--manifest", f.manifest, "--stages", "relu1",
                    "--clips", "c1", "--preset", "fast", "--steps", "10", "--out", odir, "--quiet", NULL};
    CHECK(t, sfx_run(f.dir, synth_cmd_synth, argv, out, sizeof out) == 1 && strstr(out, clip) &&
                 strstr(out, "sample 1234 (0.154250 s) is NaN"),
          "message: %s", out);
}

/* ------------------------------------------------------------- SIGKILL */

/* Kills `writer` (a child saving in a loop) at 20 random moments; after
 * each kill `check` must find a whole previous version at path. Returns
 * how many kills caught a save mid-write (a temp file left behind), which
 * must be some, or the test proved nothing. */
static int kill_while_saving(TestCtx *t, const char *dir, void (*writer)(int version),
                             bool (*check)(int *version)) {
    int mid_write = 0;
    unsigned seed = (unsigned)time(NULL);
    writer(0); /* a first version to keep */
    for (int k = 0; k < 20; k++) {
        int before = test_count_names(dir, ".tmp-", NULL, 0);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            for (int v = 1;; v++) writer(v);
        /* Even kills at a random moment; odd ones once a temp file is there,
         * so that some land mid-write however the save's phases are timed
         * on a loaded machine. */
        for (int ms = 0; k % 2 && ms < 5000 && test_count_names(dir, ".tmp-", NULL, 0) <= before; ms++)
            nanosleep(&(struct timespec){0, 1000000L}, NULL);
        struct timespec ts = {0, (long)(k % 2 ? rand_r(&seed) % 10 : 5 + rand_r(&seed) % 150) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        mid_write += test_count_names(dir, ".tmp-", NULL, 0) > before;
        int version = -1;
        CHECK(t, check(&version), "kill %d: the file is not a whole version", k);
    }
    printf("    20 kills, %d mid-write; the file was whole every time\n", mid_write);
    fflush(stdout);
    return mid_write;
}

/* A network big enough (2 M weights, 8 MB) that saving takes a while; every
 * weight of version v is v + 0.5, so a mix of two versions is visible.
 * Built once per process, so the killed child spends its time saving. */
static char model_path[700];

static Network *big_network(void) {
    static Network net;
    if (net.n_params) return &net;
    FrontEndConfig fe;
    Error err = {{0}};
    front_end_config_preset("tiny", &fe, &err);
    const char *json = "{\"name\": \"big\", \"input\": [1, 21, 20], \"layers\": [{\"name\": "
                       "\"flat\", \"op\": \"flatten\"}, {\"name\": \"fc\", \"op\": \"linear\", "
                       "\"out\": 5000}]}";
    if (network_from_architecture(&net, json, &fe, &err) != 0) abort();
    return &net;
}

static void save_network_version(int version) {
    Network *net = big_network();
    Error err = {{0}};
    for (size_t i = 0; i < net->n_params; i++) net->param_block[i] = (float)version + 0.5f;
    if (network_save(net, model_path, NULL, &err) != 0) abort();
}

static bool network_is_whole(int *version) {
    Network net;
    Error err = {{0}};
    if (network_load(&net, model_path, &err) != 0) return fprintf(stderr, "%s\n", err.msg), false;
    float v = net.param_block[0];
    bool same = true;
    for (size_t i = 0; i < net.n_params; i++) same &= net.param_block[i] == v;
    *version = (int)v;
    network_free(&net);
    return same;
}

TEST(sigkill_while_saving_a_model_keeps_the_previous_file) {
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", test_tmpdir(t));
    CHECK(t, kill_while_saving(t, test_tmpdir(t), save_network_version, network_is_whole) > 0,
          "no kill landed during a save");
}

/* Synthesis checkpoints: a 2 M-sample wave, Adam moments and the loss. */
static char ckpt_path[700];
#define CKPT_N 2000000

static SynthSettings ckpt_settings(void) {
    SynthSettings s;
    Error err;
    synth_settings_preset("fast", &s, &err); /* Adam: moments are saved too */
    return s;
}

static void save_checkpoint_version(int version) {
    static MetamerState st; /* allocated once per process, like the network */
    SynthSettings s = ckpt_settings();
    if (!st.wave) {
        st.wave = alloc_floats(CKPT_N), st.loss = alloc_floats(64);
        optim_init(&st.opt, &s, CKPT_N);
    }
    st.step = 10 + version % 50, st.seconds = version;
    rng_seed(&st.rng, (uint64_t)version);
    for (int i = 0; i < CKPT_N; i++) st.wave[i] = st.opt.m[i] = st.opt.v[i] = (float)version;
    for (int i = 0; i < st.step; i++) st.loss[i] = (float)version;
    Error err;
    if (checkpoint_save(ckpt_path, "key", "plans", &s, &st, CKPT_N, &err) != 0) abort();
}

static bool checkpoint_is_whole(int *version) {
    SynthSettings s = ckpt_settings();
    MetamerState st = {0};
    st.wave = alloc_floats(CKPT_N), st.loss = alloc_floats(64);
    optim_init(&st.opt, &s, CKPT_N);
    Error err = {{0}};
    bool other_plans = true;
    bool ok = checkpoint_load(ckpt_path, "key", "plans", &s, &st, CKPT_N, 1000, &other_plans, &err) == 1;
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    *version = (int)st.seconds;
    for (int i = 0; ok && i < CKPT_N; i++)
        ok = st.wave[i] == *version && st.opt.m[i] == *version && st.opt.v[i] == *version;
    ok = ok && st.step == 10 + *version % 50 && st.loss[st.step - 1] == *version && !other_plans;
    free(st.wave), free(st.loss);
    optim_free(&st.opt);
    return ok;
}

TEST(sigkill_while_checkpointing_keeps_the_previous_checkpoint) {
    snprintf(ckpt_path, sizeof ckpt_path, "%s/c0_s0.ckpt.safetensors", test_tmpdir(t));
    CHECK(t, kill_while_saving(t, test_tmpdir(t), save_checkpoint_version, checkpoint_is_whole) > 0,
          "no kill landed during a save");
}

/* ------------------------------------------------------- non-finite weights */

/* NaN or Inf in one weight: loading names the file, tensor and element. */
TEST(nan_or_inf_weights_are_refused_with_the_tensor) {
    snprintf(model_path, sizeof model_path, "%s/m.safetensors", test_tmpdir(t));
    const float bad[2] = {NAN, -INFINITY};
    const char *what[2] = {"NaN", "Inf"};
    for (int k = 0; k < 2; k++) {
        save_network_version(0);
        Network net;
        Error err = {{0}};
        REQUIRE(t, network_load(&net, model_path, &err) == 0, "%s", err.msg);
        net.param_block[net.params[1].offset + 7] = bad[k];
        REQUIRE(t, network_save(&net, model_path, NULL, &err) == 0, "%s", err.msg);
        network_free(&net);
        char want[900];
        snprintf(want, sizeof want, "%s: tensor 'fc.weight' element 7 is %s", model_path, what[k]);
        CHECK(t, network_load(&net, model_path, &err) != 0 && strstr(err.msg, want),
              "message: %s", err.msg);
    }
}
