/* Paths read from files (manifests, designs, metamer tables) must stay in
 * the folder of the file that names them: a shared or downloaded design
 * must not make the program read /home/someone/.ssh or write next to
 * ../../elsewhere. The check is on the text (no file system access), so it
 * gives the same answer before and after the files exist; symlinks inside
 * the folder are the lab's own business. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

static bool allow_outside;

void paths_allow_outside(bool allow) { allow_outside = allow; }

bool paths_outside_allowed(void) {
    const char *env = getenv("METAMERS_ALLOW_OUTSIDE");
    return allow_outside || (env && strcmp(env, "1") == 0);
}

/* Depth below the base folder never goes negative: "a/../b" is fine,
 * "a/../../b" is not. Empty components and "." do not move. */
static bool climbs_out(const char *rel) {
    int depth = 0;
    for (const char *p = rel; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0) return true;
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            depth++;
        }
        p += n;
        while (*p == '/') p++;
    }
    return false;
}

int path_check_inside(const char *rel, const char *base, Error *err) {
    if (paths_outside_allowed()) return 0;
    if (rel[0] == '/')
        return error_set(err, "path '%s' is absolute; paths must be relative to %s "
                              "(--allow-outside permits others)", rel, base);
    if (climbs_out(rel))
        return error_set(err, "path '%s' leads out of %s (--allow-outside permits it)", rel,
                         base);
    return 0;
}
