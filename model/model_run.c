/* Waveform -> cochleagram -> network, and back: the whole model as synthesis,
 * represent and classify use it. Buffers are made once here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

int model_run_init(ModelRun *m, const Network *net, Pool *pool, Error *err) {
    return model_run_init_reduced(m, net, pool, 0, err);
}

int model_run_init_reduced(ModelRun *m, const Network *net, Pool *pool, double oversample,
                           Error *err) {
    memset(m, 0, sizeof *m);
    m->net = net;
    m->pool = pool;
    m->coch = cochleagram_create_reduced(&net->front_end, oversample, err);
    if (!m->coch) return -1;
    m->coch_work = cochleagram_work_create(m->coch, pool_size(pool));
    m->net_work = network_work_create(net, 1, false);
    network_work_set_pool(m->net_work, pool); /* used while OpenBLAS runs one thread */
    m->n_coch = (size_t)cochleagram_channels(m->coch) * cochleagram_frames(m->coch);
    m->coch_out = alloc_floats(m->n_coch);
    m->d_coch = alloc_floats(m->n_coch);
    return 0;
}

void model_run_free(ModelRun *m) {
    if (!m->coch) return;
    network_work_free(m->net_work);
    cochleagram_work_free(m->coch_work);
    cochleagram_free(m->coch);
    free(m->coch_out);
    free(m->d_coch);
    memset(m, 0, sizeof *m);
}

int model_run_samples(const ModelRun *m) { return cochleagram_samples(m->coch); }

void model_forward(ModelRun *m, const float *wave, const int *stages, int n_stages) {
    cochleagram_forward(m->coch, m->coch_work, m->pool, wave, m->coch_out);
    /* Stage -1 (the cochleagram) needs no network layers. */
    int layers[64], n = 0;
    for (int k = 0; k < n_stages && n < 64; k++)
        if (stages[k] >= 0) layers[n++] = stages[k];
    network_forward(m->net, m->net_work, m->coch_out, layers, n);
}

const float *model_stage_output(const ModelRun *m, int stage) {
    return stage < 0 ? m->coch_out : network_activation(m->net_work, stage);
}

int64_t model_stage_numel(const ModelRun *m, int stage) {
    return architecture_stage_numel(&m->net->arch, stage);
}

void model_backward(ModelRun *m, const int *stages, const float *const *d_stages, int n_stages,
                    unsigned surrogates, float *d_wave) {
    int layers[64], n = 0;
    const float *d_layers[64];
    memset(m->d_coch, 0, m->n_coch * sizeof(float));
    for (int k = 0; k < n_stages; k++) {
        if (stages[k] < 0) {
            for (size_t j = 0; j < m->n_coch; j++) m->d_coch[j] += d_stages[k][j];
        } else if (n < 64) {
            layers[n] = stages[k];
            d_layers[n++] = d_stages[k];
        }
    }
    if (n > 0) {
        const float *g = network_backward(m->net, m->net_work, layers, d_layers, n, surrogates, NULL);
        for (size_t j = 0; j < m->n_coch; j++) m->d_coch[j] += g[j];
    }
    cochleagram_backward(m->coch, m->coch_work, m->pool, m->d_coch, d_wave);
}

/* Softmax in double for the probabilities people read. */
void model_softmax(const float *logits, int n, double *prob) {
    double mx = -INFINITY, sum = 0;
    for (int c = 0; c < n; c++) mx = logits[c] > mx ? logits[c] : mx;
    for (int c = 0; c < n; c++) sum += prob[c] = exp((double)logits[c] - mx);
    for (int c = 0; c < n; c++) prob[c] /= sum;
}
