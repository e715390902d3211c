/* The model commands end to end: represent (with --grad), stages, classify,
 * and their one-line errors with non-zero exits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../model/model.h"
#include "../stimuli/stimuli.h"
#include "test.h"

/* Runs cmd(argv) with stdout/stderr sent to files in dir; returns its code. */
static int run_cmd(int (*cmd)(int, char **), char **argv, const char *dir) {
    int argc = 0;
    while (argv[argc]) argc++;
    char out[600], errp[600];
    snprintf(out, sizeof out, "%s/stdout", dir);
    snprintf(errp, sizeof errp, "%s/stderr", dir);
    fflush(stdout), fflush(stderr);
    int so = dup(1), se = dup(2);
    if (!freopen(out, "w", stdout) || !freopen(errp, "w", stderr)) return -99;
    int rc = cmd(argc, argv);
    fflush(stdout), fflush(stderr);
    dup2(so, 1), dup2(se, 2);
    close(so), close(se);
    return rc;
}

static char *slurp(const char *dir, const char *name) {
    char path[600], *data = NULL;
    size_t n;
    Error err;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return read_file(path, &data, &n, &err) == 0 ? data : xstrdup("");
}

TEST(cli_represent_matches_library_and_grad) {
    const char *dir = test_tmpdir(t);
    char wav[600], out[600], cot[600];
    snprintf(wav, sizeof wav, "%s/in.wav", dir);
    snprintf(out, sizeof out, "%s/out.safetensors", dir);
    snprintf(cot, sizeof cot, "%s/cot.safetensors", dir);
    /* 2 s at 44.1 kHz stereo: the command resamples and mixes to mono. */
    int n = 88200;
    float *x = alloc_floats((size_t)2 * n);
    Rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < 2 * n; i++) x[i] = (float)(0.1 * rng_normal(&r));
    Error err = {0};
    REQUIRE(t, audio_write_wav(wav, x, n, 2, 44100, AUDIO_FLOAT32, NULL, &err) == 0, "%s", err.msg);
    free(x);
    float *c = alloc_floats(211 * 390);
    for (int i = 0; i < 211 * 390; i++) c[i] = (float)rng_normal(&r);
    SafetensorsWriter w;
    safetensors_writer_init(&w);
    int64_t cs[2] = {211, 390};
    safetensors_writer_add(&w, "cochleagram", 2, cs, c, &err);
    REQUIRE(t, safetensors_writer_save(&w, cot, &err) == 0, "%s", err.msg);
    safetensors_writer_free(&w);

    char *argv[] = {"represent", wav, "-o", out, "--grad", cot, NULL};
    REQUIRE(t, run_cmd(model_cmd_represent, argv, dir) == 0, "represent failed: %s",
            slurp(dir, "stderr"));
    Safetensors st;
    REQUIRE(t, safetensors_open(&st, out, &err) == 0, "%s", err.msg);
    float *wave, *coch, *grad;
    REQUIRE(t, safetensors_load_f32(&st, "waveform", &wave, NULL, &err) == 0 &&
                   safetensors_load_f32(&st, "cochleagram", &coch, NULL, &err) == 0 &&
                   safetensors_load_f32(&st, "grad_waveform", &grad, NULL, &err) == 0,
            "%s", err.msg);
    CHECK(t, safetensors_metadata(&st, "front_end") != NULL, "front_end metadata missing");
    /* The same numbers straight from the library. */
    FrontEndConfig fe;
    front_end_config_preset("cochleagram_1", &fe, &err);
    Cochleagram *co = cochleagram_create(&fe, &err);
    CochleagramWork *cw = cochleagram_work_create(co, 1);
    float *y = alloc_floats(211 * 390), *g = alloc_floats(40000);
    cochleagram_forward(co, cw, NULL, wave, y);
    cochleagram_backward(co, cw, NULL, c, g);
    CHECK_REL_L2(t, coch, y, 211 * 390, 1e-6, "cochleagram from the command");
    CHECK_REL_L2(t, grad, g, 40000, 1e-6, "gradient from the command");
    free(y), free(g), free(c), free(wave), free(coch), free(grad);
    cochleagram_work_free(cw);
    cochleagram_free(co);
    safetensors_close(&st);

    /* Errors: one line naming the problem, non-zero exit, no output file. */
    char out2[600];
    snprintf(out2, sizeof out2, "%s/none.safetensors", dir);
    char *bad_stage[] = {"represent", "--model", "builtin:cochcnn9-small", "--stages", "relu9",
                         wav, "-o", out2, NULL};
    CHECK(t, run_cmd(model_cmd_represent, bad_stage, dir) == 1, "bad stage: exit code");
    char *msg = slurp(dir, "stderr");
    CHECK(t, strstr(msg, "relu9") && strstr(msg, "relu4") && strchr(msg, '\n') == strrchr(msg, '\n'),
          "bad stage message: %s", msg);
    free(msg);
    char *missing[] = {"represent", "/nonexistent.wav", "-o", out2, NULL};
    CHECK(t, run_cmd(model_cmd_represent, missing, dir) == 1, "missing input: exit code");
    msg = slurp(dir, "stderr");
    CHECK(t, strstr(msg, "/nonexistent.wav"), "missing input message: %s", msg);
    free(msg);
    CHECK(t, access(out2, F_OK) != 0, "output written despite errors");
}

TEST(cli_stages_and_classify) {
    const char *dir = test_tmpdir(t);
    char *stages[] = {"stages", "--model", "builtin:cochcnn9-small", NULL};
    REQUIRE(t, run_cmd(model_cmd_stages, stages, dir) == 0, "stages failed");
    char *out = slurp(dir, "stdout");
    CHECK(t, strstr(out, "cochleagram") && strstr(out, "[24, 9, 17]") && strstr(out, "final"),
          "stages output: %s", out);
    free(out);
    char wav[600];
    snprintf(wav, sizeof wav, "%s/a.wav", dir);
    float *x = alloc_floats(40000);
    for (int i = 0; i < 40000; i++) x[i] = (float)(0.1 * sin(0.3 * i));
    Error err = {0};
    REQUIRE(t, audio_write_wav(wav, x, 40000, 1, 20000, AUDIO_FLOAT32, NULL, &err) == 0, "%s", err.msg);
    free(x);
    char *classify[] = {"classify", "--model", "builtin:cochcnn9-small", "--tsv", "--top", "3",
                        wav, NULL};
    REQUIRE(t, run_cmd(model_cmd_classify, classify, dir) == 0, "classify failed: %s",
            slurp(dir, "stderr"));
    out = slurp(dir, "stdout");
    int lines = 0;
    double total = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tab = strrchr(line, '\t');
        if (strstr(line, wav) && tab) total += atof(tab + 1), lines++;
    }
    CHECK(t, lines == 3 && total > 0 && total <= 1.0 + 1e-6, "classify rows %d, prob sum %g",
          lines, total);
    free(out);
    char *bad[] = {"classify", "--model", "/nonexistent.safetensors", wav, NULL};
    CHECK(t, run_cmd(model_cmd_classify, bad, dir) == 1, "bad model exit code");
    out = slurp(dir, "stderr");
    CHECK(t, strstr(out, "/nonexistent.safetensors"), "bad model message: %s", out);
    free(out);
}
