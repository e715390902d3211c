/* safetensors files: header JSON, dtypes, shapes, offsets, tensor data,
 * and what a model loader builds from them (architecture and front-end
 * metadata, parameter shapes, finite weights, class labels). */
#include <stdlib.h>

#include "../../model/model.h"
#include "fuzz.h"

#define NAME "fuzz.safetensors"

static int is_float(DType dt) {
    return dt == DTYPE_F32 || dt == DTYPE_F16 || dt == DTYPE_BF16 || dt == DTYPE_F64;
}

/* Building a network builds its front end (filters, FFT plans). Under the
 * sanitizers even cochleagram_1 (the default when front_end is absent)
 * takes over 10 s, without exercising more parsing, so only files with a
 * small front end (like `tiny`) go on to network loading. */
static int small_front_end(const Safetensors *st) {
    const char *fe = safetensors_metadata(st, "front_end");
    if (!fe) return 0;
    FrontEndConfig cfg;
    Error err = {{0}};
    if (front_end_config_from_json(fe, &cfg, &err) != 0) {
        fuzz_check_error(&err, NULL);
        return 0;
    }
    return cfg.signal_size <= 8000 && (int64_t)cfg.n * cfg.sample_factor <= 100;
}

static void load_network(const Safetensors *st) {
    if (!safetensors_metadata(st, "architecture") || !small_front_end(st)) return;
    Network net;
    Error err = {{0}};
    if (network_from_safetensors(&net, st, &err) != 0) {
        fuzz_check_error(&err, NAME);
        return;
    }
    fuzz_assert(net.n_tasks >= 0 && net.arch.n_layers >= 0, "network shape");
    network_free(&net);
}

FUZZ_TARGET(safetensors) {
    Safetensors st;
    Error err = {{0}};
    if (safetensors_parse(&st, NAME, data, size, &err) != 0) {
        fuzz_check_error(&err, NAME);
        return 0;
    }
    for (int i = 0; i < st.n_entries; i++) {
        const SafetensorsEntry *e = &st.entries[i], *back = NULL;
        if (!is_float(e->dtype)) continue;
        float *x = NULL;
        fuzz_assert(safetensors_load_f32(&st, e->name, &x, &back, &err) == 0, "float tensor loads");
        fuzz_assert(back == e, "entry found by name");
        free(x);
    }
    load_network(&st);
    safetensors_close(&st);
    return 0;
}
