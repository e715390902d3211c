/* Crash-safe file output: temp file in the target directory, fsync, rename,
 * fsync the directory. A reader therefore sees either the old file or the
 * complete new one, never a prefix, even after SIGKILL or a full disk. */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir_of(const char *path) {
    char *copy = xstrdup(path);
    char *d = xstrdup(dirname(copy));
    free(copy);
    return d;
}

static void fsync_dir(const char *path) {
    char *dir = dir_of(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd); /* best effort: some filesystems refuse fsync on dirs */
        close(fd);
    }
    free(dir);
}

int atomic_open(AtomicFile *af, const char *path, int mode, Error *err) {
    memset(af, 0, sizeof *af);
    char *copy = xstrdup(path);
    char *dir = dir_of(path);
    const char *base = basename(copy);
    size_t n = strlen(dir) + strlen(base) + 32;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s/.%s.tmp-XXXXXX", dir, base);
    free(copy);
    free(dir);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        error_set(err, "%s: cannot create file: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    if (fchmod(fd, (mode_t)mode) != 0 || !(af->f = fdopen(fd, "wb"))) {
        error_set(err, "%s: cannot open file: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    af->path = xstrdup(path);
    af->tmp_path = tmp;
    return 0;
}

static void release(AtomicFile *af) {
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

void atomic_abort(AtomicFile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    release(af);
}

/* Flush, fsync and close the temp file, then move it to af->path: rename
 * replaces an existing file; link (exclusive) never does, and reports an
 * existing one as 1. On error or 1 the temp file is gone and path untouched. */
static int commit(AtomicFile *af, bool exclusive, Error *err) {
    int failed = fflush(af->f) != 0 || ferror(af->f);
    int saved = errno;
    if (!failed && fsync(fileno(af->f)) != 0) failed = 1, saved = errno;
    if (fclose(af->f) != 0 && !failed) failed = 1, saved = errno;
    af->f = NULL;
    bool existed = false;
    if (!failed && exclusive) {
        if (link(af->tmp_path, af->path) == 0)
            unlink(af->tmp_path);
        else if (errno == EEXIST)
            existed = true;
        else
            failed = 1, saved = errno;
    } else if (!failed && rename(af->tmp_path, af->path) != 0) {
        failed = 1, saved = errno;
    }
    if (failed || existed) {
        if (failed)
            error_set(err, "%s: write failed: %s (previous file left unchanged)", af->path,
                      strerror(saved ? saved : EIO));
        atomic_abort(af);
        return failed ? -1 : 1;
    }
    fsync_dir(af->path);
    release(af);
    return 0;
}

int atomic_commit(AtomicFile *af, Error *err) { return commit(af, false, err); }

static int write_whole(const char *path, const void *data, size_t n, int mode, bool exclusive,
                       Error *err) {
    AtomicFile af;
    if (atomic_open(&af, path, mode, err) != 0) return -1;
    if (n && fwrite(data, 1, n, af.f) != n) {
        error_set(err, "%s: write failed: %s (previous file left unchanged)", path,
                  strerror(errno ? errno : EIO));
        atomic_abort(&af);
        return -1;
    }
    return commit(&af, exclusive, err);
}

int atomic_write_file(const char *path, const void *data, size_t n, int mode, Error *err) {
    return write_whole(path, data, n, mode, false, err);
}

int atomic_create_file(const char *path, const void *data, size_t n, int mode, Error *err) {
    return write_whole(path, data, n, mode, true, err);
}

int read_file(const char *path, char **data, size_t *size, Error *err) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return error_set(err, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = xmalloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return error_set(err, "%s: read error (got %zu of %zu bytes)", path, got, n);
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return 0;
}

int make_dirs(const char *path, int mode, Error *err) {
    char *p = xstrdup(path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
                error_set(err, "%s: cannot create directory: %s", p, strerror(errno));
                free(p);
                return -1;
            }
            *s = c;
            if (!c) break;
        }
    }
    struct stat st;
    int ok = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    return ok ? 0 : error_set(err, "%s: not a directory", path);
}
