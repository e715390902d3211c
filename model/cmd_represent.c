/* `metamers represent`: a clip's representation at chosen stages (the
 * cochleagram, network layers) and, with --grad, the gradient of
 * sum_s <cotangent_s, stage_s> with respect to the waveform, written as
 * safetensors so any tool can read it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../stimuli/stimuli.h"
#include "model.h"

static const char represent_usage[] =
    "usage: metamers represent [--model M | --front-end NAME] [--stages S1,S2|all]\n"
    "                          IN.wav -o OUT.safetensors [--grad COTANGENT.safetensors]\n"
    "\n"
    "Writes the clip's activations at each stage (one tensor per stage, named by the\n"
    "stage: `cochleagram`, `relu2`, `word/relu4`, ...) and the waveform they came from\n"
    "(`waveform`, resampled to the front end's rate) to OUT, with the front end and\n"
    "model in the metadata.\n"
    "\n"
    "  --model M         model file (safetensors) or builtin:NAME[:SEED]\n"
    "  --front-end NAME  front end only, no network (default cochleagram_1)\n"
    "  --stages LIST     comma-separated stages, `all` or `paper` (default cochleagram);\n"
    "                    `metamers stages --model M` lists them\n"
    "  --grad FILE       also write `grad_waveform`: the vector-Jacobian product with\n"
    "                    FILE's tensors named like the stages (a single stage may use\n"
    "                    `cotangent`)\n"
    "  -o, --out FILE    output safetensors file (written atomically)\n";

typedef struct {
    const char *model, *front_end, *stages, *grad, *out, *in;
} RepresentArgs;

static int parse_args(int argc, char **argv, RepresentArgs *a) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"front-end", required_argument, 0, 'f'},
        {"stages", required_argument, 0, 's'}, {"grad", required_argument, 0, 'g'},
        {"out", required_argument, 0, 'o'},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    *a = (RepresentArgs){.stages = "cochleagram"};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'f': a->front_end = optarg; break;
        case 's': a->stages = optarg; break;
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
    if (a->model && a->front_end) {
        fprintf(stderr, "metamers represent: --model and --front-end exclude each other "
                        "(the model file names its front end)\n");
        return 2;
    }
    a->in = argv[optind];
    return 0;
}

/* --front-end: a network without layers, whose only stage is the cochleagram. */
static int open_model(const RepresentArgs *a, Network *net, Error *err) {
    if (a->model) return network_open(net, a->model, err);
    FrontEndConfig fe;
    if (front_end_config_preset(a->front_end ? a->front_end : "cochleagram_1", &fe, err) != 0)
        return -1;
    Cochleagram *c = cochleagram_create(&fe, err);
    if (!c) return -1;
    char arch[200];
    snprintf(arch, sizeof arch,
             "{\"name\": \"front-end-only\", \"input\": [1, %d, %d], \"layers\": []}",
             cochleagram_channels(c), cochleagram_frames(c));
    cochleagram_free(c);
    return network_from_architecture(net, arch, &fe, err);
}

static int read_cotangents(const char *path, const Network *net, const int *stages, int n,
                           float **cot, Error *err) {
    Safetensors st;
    if (safetensors_open(&st, path, err) != 0) return -1;
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        const char *name = stages[k] < 0 ? "cochleagram" : net->arch.layers[stages[k]].name;
        if (n == 1 && !safetensors_find(&st, name)) name = "cotangent";
        const SafetensorsEntry *e = safetensors_find(&st, name);
        int64_t want = architecture_stage_numel(&net->arch, stages[k]);
        if (!e)
            rc = error_set(err, "%s: no tensor '%s'", path, name);
        else if (e->numel != want)
            rc = error_set(err, "%s: tensor '%s' has %lld values, the stage has %lld", path,
                           name, (long long)e->numel, (long long)want);
        else
            rc = safetensors_read_f32(&st, name, cot[k], e->ndim, e->shape, err);
    }
    safetensors_close(&st);
    return rc;
}

static void stage_shape(const Network *net, int stage, int *ndim, int64_t shape[3]) {
    const int *s = stage < 0 ? net->arch.input_shape : net->arch.layers[stage].out_shape;
    if (stage < 0) { /* cochleagram: channels x frames */
        *ndim = 2, shape[0] = s[1], shape[1] = s[2];
    } else if (s[1] == 1 && s[2] == 1) {
        *ndim = 1, shape[0] = s[0];
    } else {
        *ndim = 3, shape[0] = s[0], shape[1] = s[1], shape[2] = s[2];
    }
}

static int write_output(const RepresentArgs *a, const Network *net, ModelRun *m,
                        const float *wave, const int *stages, int n, const float *grad,
                        Error *err) {
    SafetensorsWriter w;
    safetensors_writer_init(&w);
    char *fe_json = front_end_config_to_json(&net->front_end);
    safetensors_writer_set_metadata(&w, "front_end", fe_json, err);
    safetensors_writer_set_metadata(&w, "source", a->in, err);
    if (a->model) safetensors_writer_set_metadata(&w, "model", a->model, err);
    free(fe_json);
    int64_t wshape[1] = {model_run_samples(m)}, shape[3];
    int rc = safetensors_writer_add(&w, "waveform", 1, wshape, wave, err), ndim;
    for (int k = 0; k < n && rc == 0; k++) {
        stage_shape(net, stages[k], &ndim, shape);
        const char *name = stages[k] < 0 ? "cochleagram" : net->arch.layers[stages[k]].name;
        rc = safetensors_writer_add(&w, name, ndim, shape, model_stage_output(m, stages[k]), err);
    }
    if (rc == 0 && grad) rc = safetensors_writer_add(&w, "grad_waveform", 1, wshape, grad, err);
    if (rc == 0) rc = safetensors_writer_save(&w, a->out, err);
    safetensors_writer_free(&w);
    return rc;
}

static int represent(const RepresentArgs *a, const Network *net, Error *err) {
    int stages[64], n = network_parse_stages(net, a->stages, stages, 64, err);
    if (n < 0) return -1;
    if (!a->model && (n != 1 || stages[0] != -1))
        return error_set(err, "without --model the only stage is `cochleagram`");
    Audio audio = {0};
    if (audio_read(a->in, net->front_end.sr, net->front_end.signal_size, &audio, err) != 0)
        return -1;
    Pool *pool = pool_create(default_thread_count());
    ModelRun m;
    int rc = model_run_init(&m, net, pool, err);
    float *cot[64] = {0}, *grad = NULL;
    if (rc == 0) {
        model_forward(&m, audio.samples, stages, n);
        if (a->grad) {
            for (int k = 0; k < n; k++)
                cot[k] = alloc_floats((size_t)architecture_stage_numel(&net->arch, stages[k]));
            grad = alloc_floats((size_t)audio.n);
            rc = read_cotangents(a->grad, net, stages, n, cot, err);
            if (rc == 0) model_backward(&m, stages, (const float *const *)cot, n, BACKWARD_EXACT, grad);
        }
    }
    if (rc == 0) rc = write_output(a, net, &m, audio.samples, stages, n, grad, err);
    for (int k = 0; k < n; k++) free(cot[k]);
    free(grad);
    model_run_free(&m);
    pool_free(pool);
    audio_free(&audio);
    return rc;
}

int model_cmd_represent(int argc, char **argv) {
    RepresentArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    Error err = {{0}};
    Network net;
    rc = open_model(&a, &net, &err);
    if (rc == 0) {
        rc = represent(&a, &net, &err);
        network_free(&net);
    }
    if (rc != 0) {
        fprintf(stderr, "metamers represent: %s\n", err.msg);
        return 1;
    }
    return 0;
}
