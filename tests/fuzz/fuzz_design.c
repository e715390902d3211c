/* Experiment design files (JSON, strict schema; a vocabulary may come from
 * a file beside the design). */
#include <stdlib.h>
#include <string.h>

#include "../../experiment/internal.h"
#include "fuzz.h"

FUZZ_TARGET(design) {
    char path[700];
    snprintf(path, sizeof path, "%s/design.json", fuzz_workdir());
    Design d;
    Error err = {{0}};
    if (exp_design_parse((const char *)data, size, path, &d, &err) != 0) {
        fuzz_check_error(&err, path);
        return 0;
    }
    fuzz_assert(d.n_conds > 0 && d.n_manifests > 0 && d.task && d.task[0], "required keys");
    fuzz_assert(d.n_breaks <= EXP_MAX_BREAKS && d.n_choices <= EXP_MAX_CHOICES, "bounds");
    for (int k = 0; k < d.n_conds; k++)
        fuzz_assert(!d.conds[k].stage || d.conds[k].model, "a metamer condition has a model");
    exp_design_free(&d);
    return 0;
}
