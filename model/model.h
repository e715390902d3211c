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
    double comp_scale;  /* compression: y = (scale*relu(x) + offset)^power */
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
int cochleagram_channels(const Cochleagram *c); /* e.g. 211 */
int cochleagram_frames(const Cochleagram *c);   /* e.g. 390 */
int cochleagram_samples(const Cochleagram *c);  /* e.g. 40000 */
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

/* ------------------------------------------------------------ commands */

/* `metamers represent`; argv[0] is the subcommand name. Returns the exit code. */
int model_cmd_represent(int argc, char **argv);

#endif
