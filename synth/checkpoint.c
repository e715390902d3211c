/* Checkpoints of a metamer in progress: one safetensors file written
 * atomically (temp file, fsync, rename), so a kill at any moment leaves
 * either the previous or the new checkpoint, never a torn one.
 *
 * Tensors: wave [n], loss [step], adam.m and adam.v [n] (Adam only).
 * Metadata: format, key (job identity: model hash, clip, stage, seed,
 * settings), step, start (the probing start chosen), rng (xoshiro state, 4 x 16 hex digits), seconds,
 * fftw_plans (cochleagram_plans_id of the front end that made it). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth_internal.h"

#define CHECKPOINT_FORMAT "metamers-synth-checkpoint/1"

int checkpoint_save(const char *path, const char *key, const char *plans, const SynthSettings *s,
                    const MetamerState *st, int n, Error *err) {
    SafetensorsWriter w;
    safetensors_writer_init(&w);
    int64_t shape_n[1] = {n}, shape_l[1] = {st->step};
    char step[32], start[32], rng[80], secs[40];
    snprintf(step, sizeof step, "%d", st->step);
    snprintf(start, sizeof start, "%d", st->start);
    snprintf(rng, sizeof rng, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
             st->rng.s[0], st->rng.s[1], st->rng.s[2], st->rng.s[3]);
    snprintf(secs, sizeof secs, "%.17g", st->seconds);
    int rc = safetensors_writer_add(&w, "wave", 1, shape_n, st->wave, err);
    if (rc == 0) rc = safetensors_writer_add(&w, "loss", 1, shape_l, st->loss, err);
    if (rc == 0 && s->optimizer == SYNTH_OPT_ADAM) {
        rc = safetensors_writer_add(&w, "adam.m", 1, shape_n, st->opt.m, err);
        if (rc == 0) rc = safetensors_writer_add(&w, "adam.v", 1, shape_n, st->opt.v, err);
    }
    if (rc == 0) rc = safetensors_writer_set_metadata(&w, "format", CHECKPOINT_FORMAT, err);
    if (rc == 0) rc = safetensors_writer_set_metadata(&w, "key", key, err);
    if (rc == 0) rc = safetensors_writer_set_metadata(&w, "step", step, err);
    if (rc == 0) rc = safetensors_writer_set_metadata(&w, "start", start, err);
    if (rc == 0) rc = safetensors_writer_set_metadata(&w, "rng", rng, err);
    if (rc == 0) rc = safetensors_writer_set_metadata(&w, "seconds", secs, err);
    if (rc == 0) rc = safetensors_writer_set_metadata(&w, "fftw_plans", plans, err);
    if (rc == 0) rc = safetensors_writer_save(&w, path, err);
    safetensors_writer_free(&w);
    return rc;
}

static int parse_rng(const char *s, Rng *r) {
    if (!s || strlen(s) != 64) return -1;
    for (int i = 0; i < 4; i++) {
        char part[17];
        memcpy(part, s + 16 * i, 16);
        part[16] = 0;
        char *end;
        r->s[i] = strtoull(part, &end, 16);
        if (*end) return -1;
    }
    return 0;
}

int checkpoint_load(const char *path, const char *key, const char *plans, const SynthSettings *s,
                    MetamerState *st, int n, int total_steps, bool *other_plans, Error *err) {
    if (!synth_file_exists(path)) return 0;
    Safetensors f;
    if (safetensors_open(&f, path, err) != 0) return -1;
    const char *format = safetensors_metadata(&f, "format"),
               *fkey = safetensors_metadata(&f, "key"), *step = safetensors_metadata(&f, "step"),
               *rng = safetensors_metadata(&f, "rng"), *secs = safetensors_metadata(&f, "seconds");
    int rc = 0;
    char *end = NULL;
    if (!format || strcmp(format, CHECKPOINT_FORMAT) != 0 || !step || !secs) {
        rc = error_set(err, "%s: not a metamer checkpoint (delete it to start over)", path);
    } else if (!fkey || strcmp(fkey, key) != 0) {
        /* Resuming under other settings would silently mix two procedures. */
        rc = error_set(err, "%s: checkpoint of another job or other settings (was: %s); delete "
                       "it to start over",
                       path, fkey ? fkey : "?");
    } else {
        long v = strtol(step, &end, 10);
        st->step = (int)v;
        if (*end || v <= 0 || v > total_steps || parse_rng(rng, &st->rng) != 0)
            rc = error_set(err, "%s: bad step or rng in checkpoint", path);
        st->seconds = strtod(secs, NULL);
        const char *start = safetensors_metadata(&f, "start");
        st->start = start ? atoi(start) : 0;
        const char *made = safetensors_metadata(&f, "fftw_plans");
        *other_plans = !made || strcmp(made, plans) != 0;
    }
    int64_t shape_n[1] = {n}, shape_l[1] = {st->step};
    if (rc == 0) rc = safetensors_read_f32(&f, "wave", st->wave, 1, shape_n, err);
    if (rc == 0) rc = safetensors_read_f32(&f, "loss", st->loss, 1, shape_l, err);
    if (rc == 0 && s->optimizer == SYNTH_OPT_ADAM) {
        rc = safetensors_read_f32(&f, "adam.m", st->opt.m, 1, shape_n, err);
        if (rc == 0) rc = safetensors_read_f32(&f, "adam.v", st->opt.v, 1, shape_n, err);
    }
    safetensors_close(&f);
    return rc == 0 ? 1 : -1;
}
