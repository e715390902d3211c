/* A manifest's clips live in its folder: manifest_read refuses a row whose
 * path is absolute or climbs out with "..", unless the user allowed it
 * (--allow-outside), so a manifest from elsewhere cannot make training or
 * synthesis read arbitrary files. */
#include "stimuli.h"

int manifest_check_paths(const Manifest *m, const char *path, Error *err) {
    for (int i = 0; i < m->n; i++)
        if (path_check_inside(m->rows[i].path, "the manifest's folder", err) != 0)
            return error_prefix(err, "%s: clip %s", path, m->rows[i].clip_id);
    return 0;
}
