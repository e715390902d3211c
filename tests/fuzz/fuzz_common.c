/* Shared by the harnesses: a scratch folder for parsers that read paths,
 * and the error-contract check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static char workdir[512];
static int own_workdir; /* made here, so removed at exit */

void fuzz_set_workdir(const char *dir) {
    snprintf(workdir, sizeof workdir, "%s", dir);
    own_workdir = 0;
}

static void remove_workdir(void) {
    if (!own_workdir) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", workdir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", workdir);
}

/* tmpfs when there is one: the harnesses write a file per input. */
const char *fuzz_workdir(void) {
    if (workdir[0]) return workdir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(workdir, sizeof workdir, "%s/metamers-fuzz-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(workdir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    own_workdir = 1;
    atexit(remove_workdir);
    return workdir;
}

const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size) {
    static char path[700];
    snprintf(path, sizeof path, "%s/%s", fuzz_workdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

char *fuzz_cstring(const uint8_t *data, size_t size) {
    char *s = xmalloc(size + 1);
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}

void fuzz_assert(int cond, const char *what) {
    if (cond) return;
    fprintf(stderr, "fuzz: property violated: %s\n", what);
    abort();
}

void fuzz_check_error(const Error *err, const char *must_name) {
    const char *m = err->msg;
    if (!m[0] || strchr(m, '\n') || strchr(m, '\r') || (must_name && !strstr(m, must_name))) {
        fprintf(stderr, "fuzz: refusal breaks the error contract (one non-empty line%s%s): [%s]\n",
                must_name ? " naming " : "", must_name ? must_name : "", m);
        abort();
    }
}
