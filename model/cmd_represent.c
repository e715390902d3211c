/* `metamers represent`: a clip's cochleagram (and, with --grad, the gradient
 * of <cotangent, cochleagram> with respect to the waveform), written as
 * safetensors so any tool can read it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../stimuli/stimuli.h"
#include "model.h"

static const char represent_usage[] =
    "usage: metamers represent [--front-end NAME] IN.wav -o OUT.safetensors\n"
    "                          [--grad COTANGENT.safetensors]\n"
    "\n"
    "Writes the clip's cochleagram (tensor `cochleagram`, channels x frames) and the\n"
    "waveform it was computed from (tensor `waveform`, resampled to the front end's\n"
    "rate) to OUT. The front end's parameters go into the file's metadata.\n"
    "\n"
    "  --front-end NAME  front end preset (default cochleagram_1)\n"
    "  --grad FILE       also write `grad_waveform`, the vector-Jacobian product of\n"
    "                    the cochleagram with FILE's tensor `cochleagram` (or\n"
    "                    `cotangent`), same shape as the cochleagram\n"
    "  -o, --out FILE    output safetensors file (written atomically)\n";

typedef struct {
    const char *front_end, *grad, *out, *in;
} RepresentArgs;

static int parse_args(int argc, char **argv, RepresentArgs *a) {
    static const struct option opts[] = {{"front-end", required_argument, 0, 'f'},
                                         {"grad", required_argument, 0, 'g'},
                                         {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    *a = (RepresentArgs){.front_end = "cochleagram_1"};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': a->front_end = optarg; break;
        case 'g': a->grad = optarg; break;
        case 'o': a->out = optarg; break;
        case 'h': fputs(represent_usage, stdout); return 1;
        default: fputs(represent_usage, stderr); return 2;
        }
    }
    if (optind != argc - 1 || !a->out) {
        fprintf(stderr, "metamers represent: need one input file and -o OUT\n%s",
                represent_usage);
        return 2;
    }
    a->in = argv[optind];
    return 0;
}

/* Reads the cotangent for a channels x frames cochleagram from path. */
static int read_cotangent(const char *path, int channels, int frames, float *dst, Error *err) {
    Safetensors st;
    if (safetensors_open(&st, path, err) != 0) return -1;
    const char *name = safetensors_find(&st, "cochleagram") ? "cochleagram" : "cotangent";
    int64_t shape[2] = {channels, frames};
    int rc = safetensors_read_f32(&st, name, dst, 2, shape, err);
    safetensors_close(&st);
    return rc;
}

static int represent(const RepresentArgs *a, Error *err) {
    FrontEndConfig cfg;
    if (front_end_config_preset(a->front_end, &cfg, err) != 0) return -1;
    Audio audio = {0};
    if (audio_read(a->in, cfg.sr, cfg.signal_size, &audio, err) != 0) return -1;
    Cochleagram *coch = cochleagram_create(&cfg, err);
    if (!coch) {
        audio_free(&audio);
        return -1;
    }
    int C = cochleagram_channels(coch), T = cochleagram_frames(coch);
    float *out = alloc_floats((size_t)C * T), *cot = NULL, *grad = NULL;
    Pool *pool = pool_create(default_thread_count());
    CochleagramWork *work = cochleagram_work_create(coch, pool_size(pool));
    cochleagram_forward(coch, work, pool, audio.samples, out);
    int rc = 0;
    if (a->grad) {
        cot = alloc_floats((size_t)C * T);
        grad = alloc_floats((size_t)audio.n);
        rc = read_cotangent(a->grad, C, T, cot, err);
        if (rc == 0) cochleagram_backward(coch, work, pool, cot, grad);
    }
    if (rc == 0) {
        SafetensorsWriter w;
        safetensors_writer_init(&w);
        int64_t cshape[2] = {C, T}, wshape[1] = {audio.n};
        char *fe_json = front_end_config_to_json(&cfg);
        safetensors_writer_set_metadata(&w, "front_end", fe_json, err);
        safetensors_writer_set_metadata(&w, "source", a->in, err);
        free(fe_json);
        safetensors_writer_add(&w, "waveform", 1, wshape, audio.samples, err);
        safetensors_writer_add(&w, "cochleagram", 2, cshape, out, err);
        if (grad) safetensors_writer_add(&w, "grad_waveform", 1, wshape, grad, err);
        rc = safetensors_writer_save(&w, a->out, err);
        safetensors_writer_free(&w);
    }
    cochleagram_work_free(work);
    pool_free(pool);
    cochleagram_free(coch);
    free(out);
    free(cot);
    free(grad);
    audio_free(&audio);
    return rc;
}

int model_cmd_represent(int argc, char **argv) {
    RepresentArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    Error err = {{0}};
    if (represent(&a, &err) != 0) {
        fprintf(stderr, "metamers represent: %s\n", err.msg);
        return 1;
    }
    return 0;
}
