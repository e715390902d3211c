/* `--observer model:M`: a network answers each trial. The stimulus is read
 * at the model's rate, run to the logits of the experiment's task, and the
 * answer is the most probable label a person could have given (a vocabulary
 * word); none in the vocabulary gives "can't tell". Lapses and pacing are
 * the trial loop's, as for every observer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "../stimuli/stimuli.h"
#include "internal.h"

typedef struct {
    Network net;
    ModelRun run;
    int task;
    bool *in_vocab; /* per class of the task */
    double *prob;
    char *design_dir;
} ModelObserver;

static void model_destroy(ExpObserver *self) {
    ModelObserver *m = self->state;
    if (!m) return;
    model_run_free(&m->run);
    network_free(&m->net);
    free(m->in_vocab);
    free(m->prob);
    free(m->design_dir);
    free(m);
    self->state = NULL;
}

static int model_answer(ExpObserver *self, const ExpTrial *t, char *response, size_t cap,
                        double *rt_ms, Error *err) {
    (void)rt_ms;
    ModelObserver *m = self->state;
    char path[2048];
    if (t->stimulus_path[0] == '/')
        snprintf(path, sizeof path, "%s", t->stimulus_path);
    else
        snprintf(path, sizeof path, "%s/%s", m->design_dir, t->stimulus_path);
    Audio a = {0};
    const FrontEndConfig *fe = &m->net.front_end;
    if (audio_read(path, fe->sr, fe->signal_size, &a, err) != 0) return -1;
    int layer = m->net.task_layers[m->task], n = m->net.n_classes[m->task], best = -1;
    model_forward(&m->run, a.samples, &layer, 1);
    audio_free(&a);
    model_softmax(model_stage_output(&m->run, layer), n, m->prob);
    for (int c = 0; c < n; c++)
        if (m->in_vocab[c] && (best < 0 || m->prob[c] > m->prob[best])) best = c;
    snprintf(response, cap, "%s", best >= 0 ? m->net.classes[m->task][best] : EXP_CANT_TELL);
    return 0;
}

int exp_model_observer_create(const ExpObserverEnv *env, ExpObserver *o, Error *err) {
    if (!*env->arg) return error_set(err, "observer model needs a model file: model:M.safetensors");
    if (env->n_options)
        return error_set(err, "observer model: unknown option \"%s\"", env->keys[0]);
    ModelObserver *m = xcalloc(1, sizeof *m);
    o->state = m;
    o->answer = model_answer;
    o->destroy = model_destroy;
    m->design_dir = xstrdup(env->design_dir);
    if (network_open(&m->net, env->arg, err) != 0) return model_destroy(o), -1;
    m->task = -1;
    for (int k = 0; k < m->net.n_tasks; k++)
        if (strcmp(m->net.task_names[k], env->task) == 0 || m->net.n_tasks == 1) m->task = k;
    if (m->task < 0) {
        error_set(err, "%s has no task \"%s\"", env->arg, env->task);
        return model_destroy(o), -1;
    }
    int n = m->net.n_classes[m->task];
    m->in_vocab = xcalloc((size_t)n, sizeof(bool));
    m->prob = xcalloc((size_t)n, sizeof(double));
    for (int c = 0; c < n; c++)
        for (int v = 0; v < env->n_vocabulary; v++)
            if (strcmp(m->net.classes[m->task][c], env->vocabulary[v]) == 0) m->in_vocab[c] = true;
    if (model_run_init(&m->run, &m->net, NULL, err) != 0) return model_destroy(o), -1;
    return 0;
}
