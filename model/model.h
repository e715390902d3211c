/* model: the auditory front end (cochleagram) and the network engine.
 *
 * Front end: ERB-spaced half-cosine filterbank applied in the frequency domain,
 * Hilbert envelopes, sinc-Kaiser downsampling, power compression, with an
 * exact vector-Jacobian product (cochleagram_backward). The reference is
 * chcochleagram's `cochleagram_1` (Feather et al. 2023), see DESIGN.md.
 */
#ifndef MODEL_H
#define MODEL_H

#include "../core/core.h"

/* ------------------------------------------------------------- front end */

typedef struct {
    int sr;            /* input sample rate, Hz */
    int signal_size;   /* samples per clip */
    int n;             /* ERB-spaced band-pass filters before oversampling */
    double low_lim;    /* Hz */
    double high_lim;   /* Hz */
    int sample_factor; /* filter oversampling: 1, 2 or 4 */
    bool full_filter;  /* true: filters cover the two-sided spectrum */
    int env_sr;        /* envelope rate after downsampling, Hz */
    int window_size;   /* sinc-Kaiser downsampling taps */
    double kaiser_beta;
    double comp_scale;  /* compression: y = (scale*(relu(x) + offset))^power */
    double comp_offset;
    double comp_power;
    double comp_clip;   /* |dy/dx| is clipped to this in backward */
} FrontEndConfig;

/* Named presets: "cochleagram_1" (DESIGN.md) and smaller ones for tests. */
int front_end_config_preset(const char *name, FrontEndConfig *cfg, Error *err);
/* Parses the `front_end` JSON schema of the golden files / model metadata. */
int front_end_config_from_json(const char *json, FrontEndConfig *cfg, Error *err);
/* Same schema back; malloc'd string. */
char *front_end_config_to_json(const FrontEndConfig *cfg);

typedef struct Cochleagram Cochleagram;         /* filters, window, FFT plans */
typedef struct CochleagramWork CochleagramWork; /* per-clip buffers, saved state */

/* Builds filters and FFTW plans once. Errors name the bad parameter. */
Cochleagram *cochleagram_create(const FrontEndConfig *cfg, Error *err);
void cochleagram_free(Cochleagram *c);
/* A cochleagram for fast synthesis: each channel's envelope is formed at
 * every r-th sample only (r per channel, as coarse as oversample x the
 * channel's bandwidth allows) and downsampled by the window's every r-th
 * tap. Not exact: a close surrogate whose error synth/README.md measures
 * (metamers are judged with the exact one). oversample 0 = exact. */
Cochleagram *cochleagram_create_reduced(const FrontEndConfig *cfg, double oversample, Error *err);
/* The oversampling that `synth --envelope reduced` and `train --remix-envelope
 * reduced` use: output within ~2e-4 of the exact front end on speech and
 * music, gradient within ~1.5% (synth/README.md). */
#define COCHLEAGRAM_REDUCED_OVERSAMPLE 4.0
/* Envelope samples per clip over all channels (channels x samples if exact). */
int cochleagram_envelope_samples(const Cochleagram *c);
int cochleagram_channels(const Cochleagram *c); /* e.g. 211 */
int cochleagram_frames(const Cochleagram *c);   /* e.g. 390 */
int cochleagram_samples(const Cochleagram *c);  /* e.g. 40000 */
/* Names the FFTW plans c runs (16 hex digits of the hash of the wisdom they
 * were made from). Front ends of one configuration with the same id give
 * bit-identical results; plans measured elsewhere differ in the last bits,
 * which a long optimization amplifies. */
const char *cochleagram_plans_id(const Cochleagram *c);
const FrontEndConfig *cochleagram_config(const Cochleagram *c);

/* Buffers for one clip at a time, for up to n_workers pool workers. Several
 * works on one Cochleagram may run concurrently (plans are shared read-only). */
CochleagramWork *cochleagram_work_create(const Cochleagram *c, int n_workers);
void cochleagram_work_free(CochleagramWork *w);

/* out: channels x frames, row-major. Keeps in w what backward needs.
 * pool may be NULL (single thread). No allocation. */
void cochleagram_forward(const Cochleagram *c, CochleagramWork *w, Pool *pool,
                         const float *wave, float *out);
/* d_wave = (d out / d wave)^T d_out at the wave of the last forward on w. */
void cochleagram_backward(const Cochleagram *c, CochleagramWork *w, Pool *pool,
                          const float *d_out, float *d_wave);

/* ---------------------------------------------------------- architecture */

typedef enum {
    OP_CONV2D,
    OP_RELU,
    OP_MAXPOOL,
    OP_AVGPOOL,
    OP_BATCHNORM,
    OP_LRN,
    OP_LINEAR,
    OP_FLATTEN,
    OP_DROPOUT,
} LayerOp;

/* One layer as the architecture JSON describes it, with shapes resolved.
 * Shapes are per example, [C, H, W]; flat layers are [N, 1, 1]. */
typedef struct {
    char *name;   /* stage name: "conv0", "word/relu4" */
    char *params; /* tensor-name prefix: "conv0", "word.conv4" */
    LayerOp op;
    int input;    /* index of the input layer; -1 = the network input */
    int out_shape[3];
    int out_features;           /* conv2d channels, linear outputs */
    int kernel[2], stride[2];   /* conv2d, pools */
    int pad[2];                 /* padding before (top, left); the rest after */
    bool has_bias;              /* conv2d, linear */
    bool count_include_pad;     /* avgpool (always true: TF SAME semantics) */
    double eps, momentum;       /* batchnorm */
    int lrn_radius;             /* lrn: depth_radius, bias, alpha, beta */
    double lrn_bias, lrn_alpha, lrn_beta;
    double dropout_p;
} LayerSpec;

typedef struct {
    char *name;
    int input_shape[3]; /* [1, channels, frames] of the front end */
    LayerSpec *layers;
    int n_layers;
    char **task_names; /* "outputs" map: task -> logits layer */
    int *task_layers;
    int n_tasks;
} Architecture;

int architecture_parse(Architecture *a, const char *json, Error *err);
void architecture_free(Architecture *a);
/* -1 for "cochleagram", the layer index for a layer name, -2 if unknown. */
int architecture_stage_index(const Architecture *a, const char *stage);
/* Values per example at a stage (layer index, or -1 for the input). */
int64_t architecture_stage_numel(const Architecture *a, int layer);
const char *layer_op_name(LayerOp op);

/* --------------------------------------------------------------- network */

/* A layer's parameters: pointers into Network.param_block (NULL if absent).
 * conv2d weight [out, in, kh, kw], linear weight [out, in] (PyTorch layouts);
 * batchnorm: weight = gamma, bias = beta, mean/var = running statistics. */
typedef struct {
    float *weight, *bias, *mean, *var;
    int64_t n_weight, n_bias, n_stat;
    size_t offset; /* of weight in param_block; bias, mean, var follow */
} LayerParams;

typedef struct {
    Architecture arch;
    FrontEndConfig front_end;
    LayerParams *params; /* one per layer */
    float *param_block;
    size_t n_params;
    char **task_names; /* e.g. "word", "genre" */
    int *task_layers;  /* logits layer of each task */
    char ***classes;   /* labels per task (from metadata classes.<task>) */
    int *n_classes;
    int n_tasks;
    char **meta_keys, **meta_values; /* the file's metadata, kept for saving */
    int n_meta;
    char *arch_json;
} Network;

/* Loads and validates: architecture, every tensor's shape (the error names
 * the first mismatch), finite values, front end matching the input shape. */
int network_load(Network *net, const char *path, Error *err);
int network_from_safetensors(Network *net, const Safetensors *st, Error *err);
/* A model file, or "builtin:NAME[:SEED]" (random weights, cochleagram_1). */
int network_open(Network *net, const char *spec, Error *err);
/* A network with zeroed parameters from an architecture JSON and front end. */
int network_from_architecture(Network *net, const char *arch_json, const FrontEndConfig *fe,
                              Error *err);
/* Built-in architectures with PyTorch-default random weights:
 * "cochcnn9" (Feather 2023 word network, 794 classes), "cochcnn9-small"
 * (the golden test net's layout). */
int network_builtin(Network *net, const char *name, const FrontEndConfig *fe, uint64_t seed,
                    Error *err);
void network_init_random(Network *net, uint64_t seed);
/* He (Kaiming) uniform weights for ReLU layers, zero biases: where
 * `metamers train` starts. */
void network_init_he(Network *net, uint64_t seed);
void network_free(Network *net);
/* Saves weights (F32, PyTorch names) with architecture, front_end,
 * classes.<task>, the loaded file's metadata, and extra key/value pairs
 * (NULL-terminated list), atomically. */
int network_save(const Network *net, const char *path, const char *const *extra_meta,
                 Error *err);
int network_set_classes(Network *net, int task, char *const *labels, int n, Error *err);
/* Layer index of a stage name, -1 for "cochleagram"; -2 and an error listing
 * the valid stages if unknown. */
int network_stage_index(const Network *net, const char *stage, Error *err);
/* Named stage sets for --stages. "all": the cochleagram and every layer.
 * "paper": the stages Feather et al. 2023 made metamers at for CochCNN9 (their
 * metamer layer list): the cochleagram, every relu, every avgpool and each
 * task's logits layer; it leaves out the max-pools, batchnorms and convs.
 * Fills STAGES (room for n_layers + 1) in model order and returns the count,
 * or -1 if NAME is not a set. */
int network_stage_set(const Network *net, const char *name, int *stages);
/* "a,b,c" or a set name -> stage indices (-1 = cochleagram); returns the count,
 * or -1 with an error naming the unknown stage and the valid ones. */
int network_parse_stages(const Network *net, const char *list, int *stages, int max, Error *err);
/* The layer whose signs decide which of stage's values are exactly zero: the
 * input of the relu that stage is computed from through pools, flatten and
 * dropout only (a relu stage: its own input). -2 if there is none. */
int network_relu_input_of(const Network *net, int stage);
/* [C, H, W] that layer reads. */
const int *network_input_shape_of(const Network *net, int layer);

/* Activations, gradients and scratch for running a network on `batch`
 * examples; training adds batch statistics and dropout. One per thread. */
typedef struct NetworkWork NetworkWork;
NetworkWork *network_work_create(const Network *net, int batch, bool training);
void network_work_free(NetworkWork *w);
int network_work_batch(const NetworkWork *w);
/* Workers the layers may split their work over (borrowed; NULL, the
 * default: the calling thread, with OpenBLAS threading the matrix products).
 * The pool's workers must not be running this network. Not in a step loop:
 * it may reallocate scratch. */
void network_work_set_pool(NetworkWork *w, Pool *pool);
/* Seed for dropout masks of the next training forward. */
void network_set_step_seed(NetworkWork *w, uint64_t seed);
/* Task routing for a batch whose examples each serve one target (training a
 * branched network: a word clip's loss does not depend on the genre branch).
 * From the next forward on, a layer on target k's path alone (k < n_targets)
 * runs only on rows [first[k], first[k] + count[k]) of the batch, forward and
 * backward; layers on several paths run on every row. Its other rows are
 * left as they were and must not be read; the gradients reaching shared
 * layers are exact. A batchnorm on one path takes its statistics over that
 * path's rows. n_targets 0 turns routing off. */
#define NETWORK_MAX_ROUTES 8
void network_route_rows(NetworkWork *w, const int *first, const int *count, int n_targets);

/* Runs the layers on the paths from the input (batch x [1, H, W], borrowed
 * until the backward) to each target layer, nothing else. */
void network_forward(const Network *net, NetworkWork *w, const float *input, const int *targets,
                     int n_targets);
/* Activation of a layer from the last forward (layer -1: the input). */
const float *network_activation(const NetworkWork *w, int layer);
/* Surrogate gradients for metamer synthesis, or-ed together; the forward is
 * always exact and training uses BACKWARD_EXACT. */
enum {
    BACKWARD_EXACT = 0,
    /* relu layers that are targets pass the gradient unchanged (Feather
     * 2023's fake ReLU at the matched stage) */
    BACKWARD_FAKE_RELU = 1 << 0,
    /* every maxpool layer spreads each window's gradient evenly over the
     * window (avgpool's backward) instead of sending it all to the argmax:
     * elements that are not a window's maximum get a gradient too, so an
     * optimizer can change which element wins (synth/README.md) */
    BACKWARD_SPREAD_MAXPOOL = 1 << 1,
    /* every other relu passes a tenth of a gradient that would raise an
     * inactive unit (RELU_BACKWARD_REVIVE): units dead in the metamer but
     * alive in the natural clip can come back (synth/README.md) */
    BACKWARD_REVIVE_RELU = 1 << 2,
};

/* Backpropagates d_targets[k] (gradient w.r.t. target k's activation) to the
 * input; returns the input gradient (owned by w). surrogates: BACKWARD_*
 * flags. d_params (layout of param_block) accumulates parameter gradients if
 * non-NULL. Must follow a forward to (at least) the same targets. */
const float *network_backward(const Network *net, NetworkWork *w, const int *targets,
                              const float *const *d_targets, int n_targets, unsigned surrogates,
                              float *d_params);

/* ------------------------------------------------------------ whole model */

/* Waveform -> cochleagram -> network for one clip, with the exact backward.
 * Stages are layer indices, -1 = the cochleagram. */
typedef struct {
    const Network *net; /* borrowed */
    Pool *pool;         /* borrowed, may be NULL */
    Cochleagram *coch;
    CochleagramWork *coch_work;
    NetworkWork *net_work;
    float *coch_out, *d_coch;
    size_t n_coch;
} ModelRun;

int model_run_init(ModelRun *m, const Network *net, Pool *pool, Error *err);
/* The same with the reduced-rate envelope surrogate (cochleagram_create_reduced). */
int model_run_init_reduced(ModelRun *m, const Network *net, Pool *pool, double oversample,
                           Error *err);
void model_run_free(ModelRun *m);
int model_run_samples(const ModelRun *m);
/* Computes the cochleagram and only the layers the stages need. */
void model_forward(ModelRun *m, const float *wave, const int *stages, int n_stages);
const float *model_stage_output(const ModelRun *m, int stage);
int64_t model_stage_numel(const ModelRun *m, int stage);
/* d_wave = sum over stages of J_stage^T d_stages[k], at the last forward,
 * with network_backward's BACKWARD_* surrogates. */
void model_backward(ModelRun *m, const int *stages, const float *const *d_stages, int n_stages,
                    unsigned surrogates, float *d_wave);
void model_softmax(const float *logits, int n, double *prob);

/* ------------------------------------------------------------ commands */

/* Subcommands; argv[0] is the subcommand name. Return the exit code. */
int model_cmd_represent(int argc, char **argv);
int model_cmd_stages(int argc, char **argv);
int model_cmd_classify(int argc, char **argv);

/* ------------------------------------------------------------ training */

/* network_builtin with the class count of each task overridden where
 * n_classes[k] > 0 (n_classes may be NULL): the default model's word task
 * has one output per vocabulary word (model/README.md); weights from
 * init(net, seed) (network_init_he for training, network_init_random for
 * an untrained PyTorch-like net). */
int network_builtin_classes(Network *net, const char *name, const FrontEndConfig *fe,
                            uint64_t seed, const int *n_classes,
                            void (*init)(Network *, uint64_t), Error *err);

/* `metamers train` and `metamers eval` (model/cmd_train.c, model/cmd_eval.c). */
int model_cmd_train(int argc, char **argv);
int model_cmd_eval(int argc, char **argv);

#endif
