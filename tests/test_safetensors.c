/* safetensors reader/writer: round trip, dtype conversion, and every kind of
 * malformed file rejected with a message naming the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/core.h"
#include "test.h"

/* Builds a file image from a header string and n data bytes. */
static size_t make_image(unsigned char *buf, const char *header, const void *data, size_t n) {
    size_t h = strlen(header);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    memcpy(buf + 8 + h, data, n);
    return 8 + h + n;
}

static int parse_ok(const char *header, const void *data, size_t n, Safetensors *st, Error *err) {
    unsigned char buf[4096];
    size_t len = make_image(buf, header, data, n);
    return safetensors_parse(st, "x.safetensors", buf, len, err);
}

TEST(safetensors_round_trip) {
    const char *dir = test_tmpdir(t);
    char path[600];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    float a[6] = {1, -2, 3.5f, 0, 1e-30f, 7}, b[3] = {9, 8, 7};
    int64_t sa[2] = {2, 3}, sb[1] = {3};
    SafetensorsWriter w;
    Error err = {0};
    safetensors_writer_init(&w);
    REQUIRE(t, safetensors_writer_add(&w, "a", 2, sa, a, &err) == 0, "%s", err.msg);
    REQUIRE(t, safetensors_writer_add(&w, "b.c", 1, sb, b, &err) == 0, "%s", err.msg);
    CHECK(t, safetensors_writer_add(&w, "a", 1, sb, b, &err) != 0, "duplicate name accepted");
    safetensors_writer_set_metadata(&w, "front_end", "{\"sr\": 20000}", &err);
    REQUIRE(t, safetensors_writer_save(&w, path, &err) == 0, "%s", err.msg);
    safetensors_writer_free(&w);

    Safetensors st;
    REQUIRE(t, safetensors_open(&st, path, &err) == 0, "%s", err.msg);
    float ra[6], rb[3];
    CHECK(t, safetensors_read_f32(&st, "a", ra, 2, sa, &err) == 0, "%s", err.msg);
    CHECK(t, memcmp(a, ra, sizeof a) == 0, "tensor a differs after round trip");
    CHECK(t, safetensors_read_f32(&st, "b.c", rb, 1, sb, &err) == 0, "%s", err.msg);
    CHECK(t, memcmp(b, rb, sizeof b) == 0, "tensor b.c differs after round trip");
    const char *m = safetensors_metadata(&st, "front_end");
    CHECK(t, m && strcmp(m, "{\"sr\": 20000}") == 0, "metadata lost");
    CHECK(t, (st.data_start % 8) == 0, "data section not 8-byte aligned");
    int64_t wrong[2] = {3, 2};
    CHECK(t, safetensors_read_f32(&st, "a", ra, 2, wrong, &err) != 0 &&
                 strstr(err.msg, "[2, 3]") && strstr(err.msg, "[3, 2]") && strstr(err.msg, path),
          "shape mismatch message: %s", err.msg);
    CHECK(t, safetensors_read_f32(&st, "nope", ra, 1, sb, &err) != 0 && strstr(err.msg, "nope"),
          "missing tensor message: %s", err.msg);
    safetensors_close(&st);
}

TEST(safetensors_dtypes_convert) {
    /* F16 1.0 = 0x3C00, -2.5 = 0xC100, 2^-24 (subnormal) = 0x0001;
     * BF16 1.0 = 0x3F80; F64 0.1; I64 is kept but not readable as float. */
    unsigned char data[2 * 3 + 2 + 8 + 8];
    uint16_t h[3] = {0x3C00, 0xC100, 0x0001}, bf = 0x3F80;
    double d = 0.1;
    int64_t i64 = 5;
    memcpy(data, h, 6);
    memcpy(data + 6, &bf, 2);
    memcpy(data + 8, &d, 8);
    memcpy(data + 16, &i64, 8);
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[6,8]},"
                      "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[8,16]},"
                      "\"n\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]}}";
    Safetensors st;
    Error err = {0};
    REQUIRE(t, parse_ok(hdr, data, sizeof data, &st, &err) == 0, "%s", err.msg);
    float out[3];
    int64_t s3[1] = {3}, s1[1] = {1};
    CHECK(t, safetensors_read_f32(&st, "h", out, 1, s3, &err) == 0, "%s", err.msg);
    CHECK(t, out[0] == 1.0f && out[1] == -2.5f && out[2] == 5.9604645e-8f, "F16: %g %g %g",
          out[0], out[1], out[2]);
    CHECK(t, safetensors_read_f32(&st, "b", out, 1, s1, &err) == 0 && out[0] == 1.0f, "BF16");
    CHECK(t, safetensors_read_f32(&st, "d", out, 0, NULL, &err) == 0 && out[0] == 0.1f, "F64");
    CHECK(t, safetensors_read_f32(&st, "n", out, 1, s1, &err) != 0 && strstr(err.msg, "I64"),
          "I64 read as float: %s", err.msg);
    safetensors_close(&st);
}

TEST(safetensors_rejects_malformed) {
    float d[4] = {0};
    struct {
        const char *header;
        size_t nbytes;
        const char *expect; /* substring of the message */
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}", 16, "JSON"},
        {"[1,2]", 0, "JSON object"},
        {"{\"a\":{\"dtype\":\"F99\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,32]}}", 16, "truncated"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16, "expected 12"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,16]}}", 16, "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "unindexed"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16, "not indexed"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "duplicate"},
        {"{\"__metadata__\":{\"k\":3}}", 0, "not a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]}}",
         16, "too large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Safetensors st;
        Error err = {0};
        int rc = parse_ok(cases[i].header, d, cases[i].nbytes, &st, &err);
        CHECK(t, rc != 0, "case %zu accepted", i);
        if (rc == 0) {
            safetensors_close(&st);
            continue;
        }
        CHECK(t, strstr(err.msg, "x.safetensors") && strstr(err.msg, cases[i].expect),
              "case %zu: message '%s' lacks '%s'", i, err.msg, cases[i].expect);
    }
    /* Header length beyond the file, and a file too short to hold it. */
    unsigned char buf[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    Safetensors st;
    Error err = {0};
    CHECK(t, safetensors_parse(&st, "x.safetensors", buf, 10, &err) != 0 &&
                 strstr(err.msg, "exceeds"), "%s", err.msg);
    CHECK(t, safetensors_parse(&st, "x.safetensors", buf, 5, &err) != 0 &&
                 strstr(err.msg, "too short"), "%s", err.msg);
    CHECK(t, safetensors_open(&st, "/nonexistent/m.safetensors", &err) != 0 &&
                 strstr(err.msg, "/nonexistent/m.safetensors"), "%s", err.msg);
}

TEST(safetensors_reads_golden_header) {
    Safetensors st;
    Error err = {0};
    REQUIRE(t, safetensors_open(&st, golden_path("network_small.safetensors"), &err) == 0, "%s",
            err.msg);
    CHECK(t, safetensors_metadata(&st, "architecture") != NULL, "no architecture metadata");
    const SafetensorsEntry *e = safetensors_find(&st, "conv0.weight");
    CHECK(t, e && e->ndim == 4 && e->shape[0] == 8 && e->shape[3] == 14, "conv0.weight shape");
    safetensors_close(&st);
}
