/* Architecture JSON: shapes resolved like PyTorch/TF SAME, branches, errors. */
#include <stdio.h>
#include <string.h>

#include "../model/model.h"
#include "test.h"

TEST(arch_golden_shapes_match_activations) {
    Safetensors st;
    Error err = {0};
    REQUIRE(t, safetensors_open(&st, golden_path("network_small.safetensors"), &err) == 0, "%s",
            err.msg);
    Architecture a;
    REQUIRE(t, architecture_parse(&a, safetensors_metadata(&st, "architecture"), &err) == 0, "%s",
            err.msg);
    CHECK(t, a.n_layers == 20, "layers: %d", a.n_layers);
    for (int i = 0; i < a.n_layers; i++) {
        char name[200];
        snprintf(name, sizeof name, "act.%s", a.layers[i].name);
        const SafetensorsEntry *e = safetensors_find(&st, name);
        REQUIRE(t, e, "no %s in golden file", name);
        CHECK(t, e->numel == architecture_stage_numel(&a, i), "%s: %lld values, arch says %lld",
              name, (long long)e->numel, (long long)architecture_stage_numel(&a, i));
        if (e->ndim == 3)
            for (int d = 0; d < 3; d++)
                CHECK(t, e->shape[d] == a.layers[i].out_shape[d], "%s dim %d: %lld vs %d", name, d,
                      (long long)e->shape[d], a.layers[i].out_shape[d]);
    }
    /* conv0 7x14/3 on 211x390: total pads 6 and 11, the smaller half first. */
    CHECK(t, a.layers[1].pad[0] == 3 && a.layers[1].pad[1] == 5, "conv0 pads %d %d",
          a.layers[1].pad[0], a.layers[1].pad[1]);
    CHECK(t, architecture_stage_index(&a, "cochleagram") == -1, "cochleagram stage");
    CHECK(t, architecture_stage_index(&a, "relu4") == 14, "relu4 index");
    CHECK(t, architecture_stage_index(&a, "relu9") == -2, "unknown stage");
    architecture_free(&a);
    safetensors_close(&st);
}

TEST(arch_branches_and_errors) {
    const char *branched =
        "{\"input\": [1, 20, 30], \"layers\": ["
        "{\"name\": \"conv0\", \"op\": \"conv2d\", \"out\": 4, \"kernel\": [3, 3], \"stride\": 2},"
        "{\"name\": \"relu0\", \"op\": \"relu\"},"
        "{\"name\": \"word/conv1\", \"op\": \"conv2d\", \"out\": 5, \"kernel\": [2, 2]},"
        "{\"name\": \"word/flat\", \"op\": \"flatten\"},"
        "{\"name\": \"word/final\", \"op\": \"linear\", \"out\": 7},"
        "{\"name\": \"genre/pool\", \"op\": \"avgpool\", \"kernel\": [2, 2], \"stride\": [2, 2], "
        "\"input\": \"relu0\"},"
        "{\"name\": \"genre/flat\", \"op\": \"flatten\"},"
        "{\"name\": \"genre/final\", \"op\": \"linear\", \"out\": 3}],"
        "\"outputs\": {\"word\": \"word/final\", \"genre\": \"genre/final\"}}";
    Architecture a;
    Error err = {0};
    REQUIRE(t, architecture_parse(&a, branched, &err) == 0, "%s", err.msg);
    CHECK(t, a.layers[0].out_shape[1] == 10 && a.layers[0].out_shape[2] == 15, "conv0 SAME shape");
    CHECK(t, a.layers[0].pad[0] == 0 && a.layers[0].pad[1] == 0, "SAME pads %d %d",
          a.layers[0].pad[0], a.layers[0].pad[1]);
    CHECK(t, a.layers[5].input == 1, "genre branch input");
    CHECK(t, strcmp(a.layers[2].params, "word.conv1") == 0, "params prefix %s", a.layers[2].params);
    CHECK(t, a.layers[3].out_shape[0] == 5 * 10 * 15, "flatten size %d", a.layers[3].out_shape[0]);
    CHECK(t, a.layers[6].out_shape[0] == 4 * 5 * 8, "genre flatten %d", a.layers[6].out_shape[0]);
    CHECK(t, a.n_tasks == 2 && a.task_layers[1] == 7, "outputs");
    architecture_free(&a);

    const char *bad[][2] = {
        {"{\"input\": [1, 2], \"layers\": []}", "input"},
        {"{\"input\": [1, 8, 8], \"layers\": [{\"name\": \"a\", \"op\": \"gelu\"}]}", "unknown op"},
        {"{\"input\": [1, 8, 8], \"layers\": [{\"name\": \"a\", \"op\": \"relu\"},"
         "{\"name\": \"a\", \"op\": \"relu\"}]}", "twice"},
        {"{\"input\": [1, 8, 8], \"layers\": [{\"name\": \"a\", \"op\": \"relu\", "
         "\"input\": \"b\"}]}", "not an earlier layer"},
        {"{\"input\": [1, 8, 8], \"layers\": [{\"name\": \"a\", \"op\": \"linear\", \"out\": 3}]}",
         "flat input"},
        {"{\"input\": [1, 8, 8], \"layers\": [{\"name\": \"a\", \"op\": \"conv2d\", \"out\": 3, "
         "\"kernel\": [0, 3]}]}", "kernel"},
        {"{\"input\": [1, 8, 8], \"layers\": [{\"name\": \"a\", \"op\": \"conv2d\", \"out\": 3, "
         "\"kernel\": 9, \"padding\": \"valid\"}]}", "larger"},
        {"{\"input\": [1, 8, 8], \"layers\": [{\"name\": \"a\", \"op\": \"relu\"}], "
         "\"outputs\": {\"w\": \"zz\"}}", "outputs.w"},
        {"{\"input\": [1, 8, 8], \"layers\": [{\"name\": \"a\", \"op\": \"relu\"}", "JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = architecture_parse(&a, bad[i][0], &err);
        CHECK(t, rc != 0 && strstr(err.msg, bad[i][1]), "case %zu: rc %d, message '%s' lacks '%s'",
              i, rc, err.msg, bad[i][1]);
        if (rc == 0) architecture_free(&a);
    }
}
