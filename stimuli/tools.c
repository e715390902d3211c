/* External programs (espeak-ng, flite, festival, mma, fluidsynth): looked up
 * on PATH, run with fork + execve (never through a shell, so no word or
 * path is re-parsed), stdout to a file, stderr captured for the error
 * message, killed after a timeout. Plus the small hashing and random
 * helpers the builder's files share. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stim_internal.h"

extern char **environ;

static const struct {
    const char *name, *package;
} progs[N_PROGS] = {
    [PROG_ESPEAK] = {"espeak-ng", "espeak-ng"},
    [PROG_FLITE] = {"flite", "flite"},
    [PROG_FESTIVAL] = {"festival", "festival"},
    [PROG_MMA] = {"mma", "mma"},
    [PROG_FLUIDSYNTH] = {"fluidsynth", "fluidsynth"},
};

const char *prog_name(Prog p) { return progs[p].name; }
const char *prog_package(Prog p) { return progs[p].package; }

static int find_on_path(const char *name, char *out, size_t size) {
    const char *path = getenv("PATH");
    if (!path || !*path) return -1;
    const char *p = path;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        /* an empty PATH entry means the current directory */
        int n = snprintf(out, size, "%.*s/%s", (int)len, len ? p : ".", name);
        struct stat sb;
        if (n > 0 && (size_t)n < size && stat(out, &sb) == 0 && S_ISREG(sb.st_mode) &&
            access(out, X_OK) == 0)
            return 0;
        p += len + (colon ? 1 : 0);
        if (!colon) break;
    }
    return -1;
}

/* Looked up on every call (a few stat calls): PATH is the user's to change. */
static int resolve(Prog p, char *out, size_t size, Error *err) {
    if (find_on_path(progs[p].name, out, size) == 0) return 0;
    return error_set(err, "%s not found on PATH: install the Debian package %s "
                     "(apt-get install %s, or run scripts/deps)",
                     progs[p].name, progs[p].package, progs[p].package);
}

int prog_require(Prog p, Error *err) {
    char path[4096];
    return resolve(p, path, sizeof path, err);
}

/* environ plus PYTHONHASHSEED=0 (MMA is Python: fixed hashing keeps its
 * output identical run to run) and LC_ALL=C (number formats). */
static char **child_env(void) {
    int n = 0;
    while (environ[n]) n++;
    char **env = xmalloc((size_t)(n + 3) * sizeof *env);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (strncmp(environ[i], "PYTHONHASHSEED=", 15) && strncmp(environ[i], "LC_ALL=", 7))
            env[k++] = environ[i];
    env[k++] = "PYTHONHASHSEED=0";
    env[k++] = "LC_ALL=C";
    env[k] = NULL;
    return env;
}

/* First line of the captured stderr, for the error message. */
static void first_line(int fd, char *buf, size_t size) {
    buf[0] = 0;
    if (lseek(fd, 0, SEEK_SET) != 0) return;
    ssize_t n = read(fd, buf, size - 1);
    if (n <= 0) return;
    buf[n] = 0;
    /* skip blank lines and known harmless chatter */
    char *line = buf;
    while (*line) {
        char *end = strchr(line, '\n');
        if (end) *end = 0;
        if (*line && !strstr(line, "PLUGIN")) {
            memmove(buf, line, strlen(line) + 1);
            return;
        }
        if (!end) break;
        line = end + 1;
    }
    buf[0] = 0;
}

static int wait_child(pid_t pid, double timeout_s, int *status) {
    double t0 = now_seconds();
    long sleep_ns = 200000; /* 0.2 ms, doubling to 20 ms: short tools return fast */
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) return 0;
        if (r < 0 && errno != EINTR) return -1;
        if (now_seconds() - t0 > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, status, 0);
            return 1;
        }
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 20000000) sleep_ns *= 2;
    }
}

static int open_fds(const char *stdout_path, int fds[3], Error *err) {
    char tmpl[] = "/tmp/metamers-stderr-XXXXXX";
    fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    fds[1] = stdout_path ? open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                         : open("/dev/null", O_WRONLY | O_CLOEXEC);
    fds[2] = mkostemp(tmpl, O_CLOEXEC);
    if (fds[2] >= 0) unlink(tmpl);
    if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0) {
        int e = errno;
        for (int i = 0; i < 3; i++)
            if (fds[i] >= 0) close(fds[i]);
        return error_set(err, "%s: cannot open: %s", stdout_path ? stdout_path : "/dev/null",
                         strerror(e));
    }
    return 0;
}

int prog_run(Prog p, char *const argv[], const char *stdout_path, double timeout_s,
             Error *err) {
    char path[4096];
    if (resolve(p, path, sizeof path, err) != 0) return -1;
    int fds[3];
    if (open_fds(stdout_path, fds, err) != 0) return -1;
    char **env = child_env();
    pid_t pid = fork();
    if (pid == 0) {
        /* child: only async-signal-safe calls until execve */
        for (int i = 0; i < 3; i++)
            if (dup2(fds[i], i) < 0) _exit(126);
        execve(path, argv, env);
        _exit(127);
    }
    free(env);
    int rc = 0, status = 0;
    if (pid < 0) {
        rc = error_set(err, "%s: cannot start: %s", progs[p].name, strerror(errno));
    } else {
        int w = wait_child(pid, timeout_s, &status);
        char msg[512];
        first_line(fds[2], msg, sizeof msg);
        if (w == 1)
            rc = error_set(err, "%s timed out after %.0f s", progs[p].name, timeout_s);
        else if (w < 0)
            rc = error_set(err, "%s: wait failed: %s", progs[p].name, strerror(errno));
        else if (WIFSIGNALED(status))
            rc = error_set(err, "%s killed by signal %d%s%s", progs[p].name, WTERMSIG(status),
                           msg[0] ? ": " : "", msg);
        else if (WEXITSTATUS(status) != 0)
            rc = error_set(err, "%s failed (exit status %d)%s%s", progs[p].name,
                           WEXITSTATUS(status), msg[0] ? ": " : "", msg);
    }
    for (int i = 0; i < 3; i++) close(fds[i]);
    return rc;
}

/* ------------------------------------------------------- hashes, random */

uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

uint64_t hash_mix(uint64_t a, uint64_t b) {
    uint64_t z = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int rng_range(Rng *r, int lo, int hi) {
    if (hi <= lo) return lo;
    return lo + (int)rng_below(r, (uint64_t)(hi - lo + 1));
}

double rng_range_f(Rng *r, double lo, double hi) { return lo + (hi - lo) * rng_uniform(r); }
