/* safetensors: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string", ...}}, then the raw little-endian data.
 * Everything read from the file is validated before use: a malformed model
 * must give one clear line, never a crash or a silent misread. */
#include "core.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER_BYTES (100u << 20)

static const struct {
    const char *name;
    int size;
} dtypes[] = {
    [DTYPE_F32] = {"F32", 4}, [DTYPE_F16] = {"F16", 2}, [DTYPE_BF16] = {"BF16", 2},
    [DTYPE_F64] = {"F64", 8}, [DTYPE_I64] = {"I64", 8}, [DTYPE_I32] = {"I32", 4},
    [DTYPE_I16] = {"I16", 2}, [DTYPE_I8] = {"I8", 1},   [DTYPE_U8] = {"U8", 1},
    [DTYPE_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *dtype_name(DType dt) { return dtypes[dt].name; }

static int parse_dtype(const char *s, DType *out) {
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(s, dtypes[i].name) == 0) return *out = (DType)i, 0;
    return -1;
}

void safetensors_close(Safetensors *st) {
    for (int i = 0; i < st->n_entries; i++) free(st->entries[i].name);
    for (int i = 0; i < st->n_meta; i++) free(st->meta_keys[i]), free(st->meta_values[i]);
    free(st->entries);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->bytes);
    free(st->path);
    memset(st, 0, sizeof *st);
}

static int parse_metadata(Safetensors *st, json_t *meta, Error *err) {
    if (!json_is_object(meta)) return error_set(err, "__metadata__ is not an object");
    size_t n = json_object_size(meta);
    st->meta_keys = xcalloc(n, sizeof(char *));
    st->meta_values = xcalloc(n, sizeof(char *));
    const char *key;
    json_t *v;
    json_object_foreach(meta, key, v) {
        if (!json_is_string(v))
            return error_set(err, "__metadata__.%s is not a string", key);
        st->meta_keys[st->n_meta] = xstrdup(key);
        st->meta_values[st->n_meta++] = xstrdup(json_string_value(v));
    }
    return 0;
}

/* Non-negative integer that fits; json reals like 3.0 are rejected. */
static int json_uint(json_t *v, int64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = json_integer_value(v);
    return 0;
}

static int parse_entry(SafetensorsEntry *e, const char *name, json_t *v, size_t data_size,
                       Error *err) {
    e->name = xstrdup(name);
    if (!json_is_object(v)) return error_set(err, "tensor '%s': entry is not an object", name);
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || parse_dtype(json_string_value(dt), &e->dtype) != 0)
        return error_set(err, "tensor '%s': unknown or missing dtype", name);
    if (!json_is_array(shape) || json_array_size(shape) > TENSOR_MAX_DIMS)
        return error_set(err, "tensor '%s': shape missing or has more than %d dims", name,
                         TENSOR_MAX_DIMS);
    e->ndim = (int)json_array_size(shape);
    e->numel = 1;
    for (int d = 0; d < e->ndim; d++) {
        if (json_uint(json_array_get(shape, (size_t)d), &e->shape[d]) != 0)
            return error_set(err, "tensor '%s': shape[%d] is not a non-negative integer",
                             name, d);
        if (e->shape[d] && e->numel > INT64_MAX / 8 / e->shape[d])
            return error_set(err, "tensor '%s': shape too large", name);
        e->numel *= e->shape[d];
    }
    int64_t b, en;
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        json_uint(json_array_get(offs, 0), &b) || json_uint(json_array_get(offs, 1), &en))
        return error_set(err, "tensor '%s': data_offsets must be [begin, end]", name);
    if (b > en || (uint64_t)en > data_size)
        return error_set(err,
                         "tensor '%s': data_offsets [%lld, %lld] outside the %zu data bytes "
                         "(truncated file?)",
                         name, (long long)b, (long long)en, data_size);
    int64_t want = e->numel * dtypes[e->dtype].size;
    if (en - b != want)
        return error_set(err, "tensor '%s': %lld data bytes for %lld %s values (expected %lld)",
                         name, (long long)(en - b), (long long)e->numel, dtypes[e->dtype].name,
                         (long long)want);
    e->begin = (size_t)b;
    e->end = (size_t)en;
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const SafetensorsEntry *x = *(SafetensorsEntry *const *)a, *y = *(SafetensorsEntry *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* Data regions must tile the data section exactly: overlapping tensors or
 * unindexed bytes mean a corrupt or crafted file. */
static int check_layout(const Safetensors *st, size_t data_size, Error *err) {
    SafetensorsEntry **order = xmalloc((size_t)(st->n_entries ? st->n_entries : 1) * sizeof *order);
    for (int i = 0; i < st->n_entries; i++) order[i] = &st->entries[i];
    qsort(order, (size_t)st->n_entries, sizeof *order, cmp_begin);
    size_t pos = 0;
    int rc = 0;
    for (int i = 0; i < st->n_entries && rc == 0; i++) {
        if (order[i]->begin < pos)
            rc = error_set(err, "tensor '%s' overlaps tensor '%s'", order[i]->name,
                           order[i - 1]->name);
        else if (order[i]->begin > pos)
            rc = error_set(err, "%zu unindexed bytes before tensor '%s'",
                           order[i]->begin - pos, order[i]->name);
        pos = order[i]->end > pos ? order[i]->end : pos;
    }
    if (rc == 0 && pos != data_size)
        rc = error_set(err, "%zu bytes after the last tensor are not indexed", data_size - pos);
    free(order);
    return rc;
}

static int parse_header(Safetensors *st, const char *json, size_t n, size_t data_size,
                        Error *err) {
    json_error_t jerr;
    json_t *root = json_loadb(json, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return error_set(err, "header JSON invalid at line %d column %d: %s", jerr.line,
                         jerr.column, jerr.text);
    int rc = 0;
    if (!json_is_object(root)) rc = error_set(err, "header JSON is not an object");
    size_t cap = json_object_size(root);
    st->entries = xcalloc(cap ? cap : 1, sizeof *st->entries);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (rc) break;
        if (strcmp(key, "__metadata__") == 0)
            rc = parse_metadata(st, v, err);
        else
            rc = parse_entry(&st->entries[st->n_entries++], key, v, data_size, err);
    }
    json_decref(root);
    if (rc == 0) rc = check_layout(st, data_size, err);
    return rc;
}

static int parse_owned(Safetensors *st, const char *path, unsigned char *bytes, size_t size,
                       Error *err) {
    memset(st, 0, sizeof *st);
    st->path = xstrdup(path);
    st->bytes = bytes;
    st->size = size;
    int rc = 0;
    uint64_t hlen = 0;
    if (size < 8) {
        rc = error_set(err, "too short for a safetensors file (%zu bytes)", size);
    } else {
        for (int i = 7; i >= 0; i--) hlen = hlen << 8 | bytes[i];
        if (hlen > MAX_HEADER_BYTES || hlen > size - 8)
            rc = error_set(err, "header length %llu exceeds the file (%zu bytes)",
                           (unsigned long long)hlen, size);
        else if (hlen < 2 || bytes[8] != '{')
            rc = error_set(err, "header does not start with a JSON object");
    }
    if (rc == 0) {
        st->data_start = 8 + (size_t)hlen;
        rc = parse_header(st, (const char *)bytes + 8, (size_t)hlen, size - st->data_start, err);
    }
    if (rc != 0) {
        error_prefix(err, "%s", path);
        safetensors_close(st);
    }
    return rc;
}

int safetensors_parse(Safetensors *st, const char *path, const void *bytes, size_t size,
                      Error *err) {
    unsigned char *copy = xmalloc(size ? size : 1);
    if (size) memcpy(copy, bytes, size);
    return parse_owned(st, path, copy, size, err);
}

int safetensors_open(Safetensors *st, const char *path, Error *err) {
    char *bytes;
    size_t size;
    memset(st, 0, sizeof *st);
    if (read_file(path, &bytes, &size, err) != 0) return -1;
    return parse_owned(st, path, (unsigned char *)bytes, size, err);
}

const SafetensorsEntry *safetensors_find(const Safetensors *st, const char *name) {
    for (int i = 0; i < st->n_entries; i++)
        if (strcmp(st->entries[i].name, name) == 0) return &st->entries[i];
    return NULL;
}

const char *safetensors_metadata(const Safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

static float half_to_float(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
    float v;
    if (exp == 0)
        v = ldexpf((float)man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexpf((float)(man | 1024), exp - 25);
    return sign ? -v : v;
}

static void convert(const unsigned char *src, DType dt, int64_t n, float *dst) {
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *p = src + i * dtypes[dt].size;
        uint32_t u32;
        uint64_t u64;
        switch (dt) {
        case DTYPE_F32:
            u32 = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            memcpy(&dst[i], &u32, 4);
            break;
        case DTYPE_F16: dst[i] = half_to_float((uint16_t)(p[0] | p[1] << 8)); break;
        case DTYPE_BF16:
            u32 = ((uint32_t)p[0] | (uint32_t)p[1] << 8) << 16;
            memcpy(&dst[i], &u32, 4);
            break;
        default: /* F64, checked by the caller */
            u64 = 0;
            for (int b = 7; b >= 0; b--) u64 = u64 << 8 | p[b];
            double d;
            memcpy(&d, &u64, 8);
            dst[i] = (float)d;
            break;
        }
    }
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t pos = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && pos < n; d++)
        pos += (size_t)snprintf(buf + pos, n - pos, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (pos < n) snprintf(buf + pos, n - pos, "]");
}

static int check_float_entry(const Safetensors *st, const char *name,
                             const SafetensorsEntry **out, Error *err) {
    const SafetensorsEntry *e = safetensors_find(st, name);
    if (!e) return error_set(err, "%s: tensor '%s' not found", st->path, name);
    if (e->dtype != DTYPE_F32 && e->dtype != DTYPE_F16 && e->dtype != DTYPE_BF16 &&
        e->dtype != DTYPE_F64)
        return error_set(err, "%s: tensor '%s' is %s, expected a float type", st->path, name,
                         dtypes[e->dtype].name);
    *out = e;
    return 0;
}

int safetensors_read_f32(const Safetensors *st, const char *name, float *dst, int ndim,
                         const int64_t *shape, Error *err) {
    const SafetensorsEntry *e = NULL;
    if (check_float_entry(st, name, &e, err) != 0) return -1;
    int same = e->ndim == ndim;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        numel *= shape[d];
        if (same && e->shape[d] != shape[d]) same = 0;
    }
    if (!same) {
        char want[160], got[160];
        shape_str(want, sizeof want, ndim, shape);
        shape_str(got, sizeof got, e->ndim, e->shape);
        return error_set(err, "%s: tensor '%s' has shape %s, expected %s", st->path, name, got,
                         want);
    }
    convert(st->bytes + st->data_start + e->begin, e->dtype, numel, dst);
    return 0;
}

int safetensors_load_f32(const Safetensors *st, const char *name, float **dst,
                         const SafetensorsEntry **entry_out, Error *err) {
    const SafetensorsEntry *e = NULL;
    *dst = NULL;
    if (check_float_entry(st, name, &e, err) != 0) return -1;
    *dst = alloc_floats((size_t)e->numel);
    convert(st->bytes + st->data_start + e->begin, e->dtype, e->numel, *dst);
    if (entry_out) *entry_out = e;
    return 0;
}

/* ------------------------------------------------------------------ writer */

void safetensors_writer_init(SafetensorsWriter *w) { memset(w, 0, sizeof *w); }

void safetensors_writer_free(SafetensorsWriter *w) {
    for (int i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    for (int i = 0; i < w->n_meta; i++) free(w->meta_keys[i]), free(w->meta_values[i]);
    free(w->tensors);
    free(w->meta_keys);
    free(w->meta_values);
    memset(w, 0, sizeof *w);
}

int safetensors_writer_add(SafetensorsWriter *w, const char *name, int ndim,
                           const int64_t *shape, const float *data, Error *err) {
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
        return error_set(err, "tensor '%s': %d dims (at most %d)", name, ndim, TENSOR_MAX_DIMS);
    if (strcmp(name, "__metadata__") == 0 || !*name)
        return error_set(err, "tensor name '%s' is reserved", name);
    for (int i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return error_set(err, "tensor '%s' added twice", name);
    if (w->n_tensors == w->cap_tensors) {
        w->cap_tensors = w->cap_tensors ? 2 * w->cap_tensors : 16;
        w->tensors = realloc(w->tensors, (size_t)w->cap_tensors * sizeof *w->tensors);
        if (!w->tensors) abort();
    }
    SafetensorsWriterTensor *t = &w->tensors[w->n_tensors++];
    t->name = xstrdup(name);
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->data = data;
    return 0;
}

int safetensors_writer_set_metadata(SafetensorsWriter *w, const char *key, const char *value,
                                    Error *err) {
    (void)err;
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_values[i]);
            w->meta_values[i] = xstrdup(value);
            return 0;
        }
    if (w->n_meta == w->cap_meta) {
        w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 8;
        w->meta_keys = realloc(w->meta_keys, (size_t)w->cap_meta * sizeof(char *));
        w->meta_values = realloc(w->meta_values, (size_t)w->cap_meta * sizeof(char *));
        if (!w->meta_keys || !w->meta_values) abort();
    }
    w->meta_keys[w->n_meta] = xstrdup(key);
    w->meta_values[w->n_meta++] = xstrdup(value);
    return 0;
}

static int64_t writer_numel(const SafetensorsWriterTensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* Header JSON, padded with spaces to a multiple of 8 so the data is aligned. */
static char *writer_header(const SafetensorsWriter *w, size_t *len) {
    json_t *root = json_object();
    if (w->n_meta) {
        json_t *meta = json_object();
        for (int i = 0; i < w->n_meta; i++)
            json_object_set_new(meta, w->meta_keys[i], json_string(w->meta_values[i]));
        json_object_set_new(root, "__metadata__", meta);
    }
    int64_t off = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        const SafetensorsWriterTensor *t = &w->tensors[i];
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        int64_t bytes = writer_numel(t) * 4;
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + bytes));
        json_object_set_new(root, t->name, e);
        off += bytes;
    }
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    size_t n = strlen(s), padded = (n + 7) / 8 * 8;
    char *out = xmalloc(padded + 1);
    memcpy(out, s, n);
    memset(out + n, ' ', padded - n);
    out[padded] = 0;
    free(s);
    *len = padded;
    return out;
}

static int write_le_floats(FILE *f, const float *x, int64_t n) {
    /* Little-endian hosts only write directly; the build targets x86-64/arm64. */
    return fwrite(x, 4, (size_t)n, f) == (size_t)n ? 0 : -1;
}

int safetensors_writer_save(const SafetensorsWriter *w, const char *path, Error *err) {
    size_t hlen;
    char *header = writer_header(w, &hlen);
    AtomicFile af;
    if (atomic_open(&af, path, 0644, err) != 0) {
        free(header);
        return -1;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int bad = fwrite(len8, 1, 8, af.f) != 8 || fwrite(header, 1, hlen, af.f) != hlen;
    for (int i = 0; i < w->n_tensors && !bad; i++)
        bad = write_le_floats(af.f, w->tensors[i].data, writer_numel(&w->tensors[i])) != 0;
    free(header);
    if (bad) {
        error_set(err, "%s: write failed: %s (previous file left unchanged)", path,
                  strerror(errno ? errno : EIO));
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, err);
}
