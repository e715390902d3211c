/* Which metamers to make: clips, their tasks and stages, the (clip, stage,
 * seed) job list and its shards; plus small helpers the commands share. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../stimuli/stimuli.h"
#include "synth_internal.h"

/* ------------------------------------------------------ tasks and stages */

int synth_task_stages(const Network *net, int task, int *stages) {
    int n_layers = net->arch.n_layers;
    bool *on = xcalloc((size_t)n_layers + 1, sizeof *on);
    if (task < 0 || task >= net->n_tasks) {
        for (int i = 0; i < n_layers; i++) on[i] = true;
    } else {
        /* Layers have one input each, so the path to the output is a chain. */
        for (int i = net->task_layers[task]; i >= 0; i = net->arch.layers[i].input) on[i] = true;
    }
    int n = 0;
    stages[n++] = -1;
    for (int i = 0; i < n_layers; i++)
        if (on[i]) stages[n++] = i;
    free(on);
    return n;
}

const char *synth_stage_name(const Network *net, int stage) {
    return stage < 0 ? "cochleagram" : net->arch.layers[stage].name;
}

int synth_clip_task(const Network *net, const char *clip_id, const char *task, Error *err) {
    if (net->n_tasks == 0) return -1;
    if (net->n_tasks == 1) return 0; /* a single-task model reads every clip as its task */
    for (int t = 0; t < net->n_tasks; t++)
        if (strcmp(net->task_names[t], task) == 0) return t;
    char list[256] = "";
    for (int t = 0; t < net->n_tasks; t++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", t ? ", " : "",
                 net->task_names[t]);
    error_set(err, "clip '%s' has task '%s', but the model's tasks are %s", clip_id, task, list);
    return -2;
}

static void stage_list(const Network *net, const int *stages, int n, char *buf, size_t size) {
    size_t pos = 0;
    buf[0] = 0;
    for (int k = 0; k < n && pos + 8 < size; k++)
        pos += (size_t)snprintf(buf + pos, size - pos, "%s%s", k ? ", " : "",
                                synth_stage_name(net, stages[k]));
    if (pos + 8 >= size) strcpy(buf + size - 8, ", ...");
}

int synth_clip_stages(const Network *net, const char *list, int task, const char *clip_id,
                      const char *task_name, int *stages, Error *err) {
    int n_layers = net->arch.n_layers;
    int *allowed = xmalloc(((size_t)n_layers + 1) * sizeof *allowed);
    int n_allowed = synth_task_stages(net, task, allowed);
    int *set = xmalloc(((size_t)n_layers + 1) * sizeof *set);
    int n_set = network_stage_set(net, list, set);
    int n = -1;
    if (n_set >= 0) { /* a named set: its stages on this task's path */
        n = 0;
        for (int j = 0; j < n_allowed; j++)
            for (int k = 0; k < n_set; k++)
                if (set[k] == allowed[j]) stages[n++] = allowed[j];
    } else {
        int max_req = 4 * (n_layers + 1);
        int *req = xmalloc((size_t)max_req * sizeof *req);
        int n_req = network_parse_stages(net, list, req, max_req, err);
        bool *want = xcalloc((size_t)n_layers + 1, sizeof *want);
        n = n_req < 0 ? -1 : 0;
        for (int k = 0; k < n_req && n >= 0; k++) {
            bool ok = false;
            for (int j = 0; j < n_allowed; j++) ok |= allowed[j] == req[k];
            if (!ok) {
                char names[700];
                stage_list(net, allowed, n_allowed, names, sizeof names);
                error_set(err,
                          "stage '%s' is not on the path to the %s output, so clip '%s' "
                          "(task %s) cannot use it; its stages: %s",
                          synth_stage_name(net, req[k]), task_name, clip_id, task_name, names);
                n = -1;
            }
            if (ok) want[req[k] + 1] = true;
        }
        /* Model order: metamers.csv lists stages in this order. */
        for (int j = 0; n >= 0 && j < n_allowed; j++)
            if (want[allowed[j] + 1]) stages[n++] = allowed[j];
        free(req);
        free(want);
    }
    free(allowed);
    free(set);
    return n;
}

/* FNV-1a of the clip id, then the seed: rng_seed's splitmix spreads it. */
uint64_t synth_noise_seed(const char *clip_id, int seed) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)clip_id; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h ^ ((uint64_t)(unsigned)seed * 0x9E3779B97F4A7C15ull);
}

int synth_load_clip(const Network *net, const char *path, const char *clip_id, double rms,
                    float **wave, Error *err) {
    Audio a;
    if (audio_read(path, net->front_end.sr, net->front_end.signal_size, &a, err) != 0)
        return error_prefix(err, "clip '%s'", clip_id);
    if (audio_rms(a.samples, a.n) == 0) {
        audio_free(&a);
        return error_set(err, "clip '%s': %s is silent", clip_id, path);
    }
    audio_scale_to_rms(a.samples, a.n, rms);
    *wave = a.samples;
    return 0;
}

/* ---------------------------------------------------------------- shards */

void synth_stage_dirname(const char *stage, char *buf, size_t size) {
    size_t i = 0;
    for (; stage[i] && i + 1 < size; i++) {
        char c = stage[i];
        bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
        buf[i] = c == '/' ? '.' : safe ? c : '_';
    }
    buf[i] = 0;
    if (i == 0 || buf[0] == '.') buf[0] = '_'; /* never "", ".", ".." or hidden */
}

int synth_shard_parse(const char *s, int *k, int *n, Error *err) {
    char extra;
    if (sscanf(s, "%d/%d%c", k, n, &extra) != 2 || *n < 1 || *k < 1 || *k > *n)
        return error_set(err, "--shard '%s': expected K/N with 1 <= K <= N (e.g. 3/10)", s);
    return 0;
}

bool synth_shard_has(int job, int k, int n) { return job % n == k - 1; }

/* ------------------------------------------------------------------ misc */

bool synth_in_list(const char *list, const char *item) {
    size_t n = strlen(item);
    if (n == 0) return false;
    for (const char *p = list; (p = strstr(p, item)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return true;
    return false;
}

char *synth_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

bool synth_file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

char *synth_model_name(const char *spec) {
    if (strncmp(spec, "builtin:", 8) == 0) return xstrdup(spec);
    const char *base = strrchr(spec, '/');
    char *name = xstrdup(base ? base + 1 : spec);
    size_t len = strlen(name);
    if (len > 12 && strcmp(name + len - 12, ".safetensors") == 0) name[len - 12] = 0;
    return name;
}

int synth_model_sha256(const Network *net, const char *spec, char out[65], Error *err) {
    if (strncmp(spec, "builtin:", 8) != 0) return sha256_file(spec, out, err);
    /* No file: hash what defines the model instead. */
    char *fe = front_end_config_to_json(&net->front_end);
    size_t na = strlen(net->arch_json), nf = strlen(fe), np = net->n_params * sizeof(float);
    unsigned char *buf = xmalloc(na + nf + np);
    memcpy(buf, net->arch_json, na);
    memcpy(buf + na, fe, nf);
    memcpy(buf + na + nf, net->param_block, np);
    sha256_hex(buf, na + nf + np, out);
    free(buf);
    free(fe);
    return 0;
}

