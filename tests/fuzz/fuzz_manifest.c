/* Stimulus-set manifests (CSV through libcsv): header, quoting, line
 * numbers, column checks; an accepted manifest must survive the writer and
 * read back identical. */
#include <stdlib.h>
#include <string.h>

#include "../../stimuli/stimuli.h"
#include "fuzz.h"

static void round_trip(const Manifest *m) {
    char out[700];
    snprintf(out, sizeof out, "%s/rewritten.csv", fuzz_workdir());
    Error err = {{0}};
    fuzz_assert(manifest_write(out, m, &err) == 0, "an accepted manifest can be written");
    Manifest back;
    if (manifest_read(out, &back, &err) != 0) {
        fprintf(stderr, "fuzz: the rewritten manifest is refused: %s\n", err.msg);
        abort();
    }
    fuzz_assert(back.n == m->n, "same number of rows after a round trip");
    for (int i = 0; i < m->n; i++)
        fuzz_assert(manifest_row_equal(&back.rows[i], &m->rows[i]),
                    "rows equal after a round trip");
    manifest_free(&back);
}

FUZZ_TARGET(manifest) {
    const char *path = fuzz_write_file("manifest.csv", data, size);
    Manifest m;
    Error err = {{0}};
    if (manifest_read(path, &m, &err) != 0) {
        fuzz_check_error(&err, path);
        return 0;
    }
    for (int i = 0; i < m.n; i++) {
        fuzz_assert(manifest_find(&m, m.rows[i].clip_id) == i, "clip_ids are unique");
        free(manifest_clip_path(&m, &m.rows[i]));
    }
    round_trip(&m);
    manifest_free(&m);
    return 0;
}
