/* The model metadata's JSON: the architecture (layers, shapes, branches,
 * outputs) and the front-end configuration. */
#include <stdlib.h>
#include <string.h>

#include "../../model/model.h"
#include "fuzz.h"

static void parse_architecture(const char *json) {
    Architecture a;
    Error err = {{0}};
    if (architecture_parse(&a, json, &err) != 0) {
        fuzz_check_error(&err, "architecture");
        return;
    }
    for (int i = -1; i < a.n_layers; i++)
        fuzz_assert(architecture_stage_numel(&a, i) > 0, "every stage has values");
    for (int i = 0; i < a.n_layers; i++)
        fuzz_assert(architecture_stage_index(&a, a.layers[i].name) == i, "stage names are unique");
    architecture_free(&a);
}

static void parse_front_end(const char *json) {
    FrontEndConfig cfg;
    Error err = {{0}};
    if (front_end_config_from_json(json, &cfg, &err) != 0) {
        fuzz_check_error(&err, "front_end");
        return;
    }
    /* What was accepted must write back to JSON that reads the same. */
    char *again = front_end_config_to_json(&cfg);
    FrontEndConfig back;
    fuzz_assert(front_end_config_from_json(again, &back, &err) == 0, "front end reads back");
    char *twice = front_end_config_to_json(&back);
    fuzz_assert(strcmp(again, twice) == 0, "front end round trip is exact");
    free(again);
    free(twice);
}

FUZZ_TARGET(arch) {
    char *json = fuzz_cstring(data, size);
    parse_architecture(json);
    parse_front_end(json);
    free(json);
    return 0;
}
