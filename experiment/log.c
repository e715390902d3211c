/* The trial log: where a lab's data is made, so it must never lose a row.
 *
 * - One TSV row per answered trial, written with one write() and fsync'ed
 *   before the next trial starts (PsychoPy/jsPsych users lose data written
 *   only at exit).
 * - The file is locked (flock) for the whole session, so a second terminal
 *   cannot run the same participant at the same time.
 * - Resume: every complete row must be the trial list's next trial (same
 *   clip, stimulus and condition), so a log can never be continued with the
 *   wrong list. A crash mid-write leaves at most one partial last line; it is
 *   cut off (ftruncate to the last newline, fsync) before anything else.
 * - A failed write (disk full) is undone (truncate back), so the file holds
 *   only whole rows even then.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define N_LOG_COLUMNS 15

static const char HEADER[] = "trial\tblock\tphase\tclip_id\tstimulus_path\tcondition\tstage\t"
                             "model\ttrue_label\tresponse\tcorrect\trt_ms\tonset_iso8601\t"
                             "replays\tsession\n";

const char *exp_triallog_header(void) { return HEADER; }

static int check_row(char *line, int lineno, const TrialList *list, TrialLog *log, Error *err) {
    char *f[N_LOG_COLUMNS + 1];
    int n = subjects_tsv_split(line, f, N_LOG_COLUMNS + 1);
    if (n != N_LOG_COLUMNS)
        return error_set(err, "line %d has %d fields, expected %d", lineno, n, N_LOG_COLUMNS);
    if (log->n_done >= list->n)
        return error_set(err, "line %d: more rows than the trial list has trials (%d)", lineno,
                         list->n);
    const ExpTrial *t = &list->rows[log->n_done];
    char *end;
    long trial = strtol(f[0], &end, 10);
    if (*end || trial != t->trial || strcmp(f[3], t->clip_id) || strcmp(f[4], t->stimulus_path) ||
        strcmp(f[5], t->condition))
        return error_set(err,
                         "line %d is not trial %d of the trial list (trial %s, clip %s): "
                         "this log belongs to another list",
                         lineno, t->trial, f[0], f[3]);
    long session = strtol(f[14], &end, 10);
    if ((strcmp(f[10], "0") && strcmp(f[10], "1")) || *end || session < 1 || session > INT_MAX)
        return error_set(err, "line %d: bad correct or session value", lineno);
    log->correct[log->n_done++] = f[10][0] == '1';
    if (session > log->last_session) log->last_session = (int)session;
    return 0;
}

int exp_triallog_scan(const char *buf, size_t n, const TrialList *list, TrialLog *log,
                      size_t *complete_bytes, Error *err) {
    log->n_done = 0;
    log->last_session = 0;
    free(log->correct);
    log->correct = xcalloc(list->n + 1, 1);
    size_t end = n;
    while (end > 0 && buf[end - 1] != '\n') end--; /* a half-written last line */
    *complete_bytes = end;
    if (end == 0) return 0;
    size_t hl = strlen(HEADER);
    if (end < hl || memcmp(buf, HEADER, hl) != 0)
        return error_set(err, "the first line is not this program's trial-log header");
    /* A NUL byte (disk corruption) would end a C string mid-row: refuse it. */
    const char *nul = memchr(buf, 0, end);
    if (nul) {
        int line = 1;
        for (const char *p = buf; p < nul; p++) line += *p == '\n';
        return error_set(err, "line %d holds a NUL byte (a damaged file?)", line);
    }
    char *text = xmalloc(end - hl + 1);
    memcpy(text, buf + hl, end - hl);
    text[end - hl] = 0;
    int rc = 0, lineno = 1;
    for (char *line = text, *nl; rc == 0 && *line; line = nl + 1) {
        nl = strchr(line, '\n'); /* every line ends with one: text stops after a newline */
        *nl = 0;
        rc = check_row(line, ++lineno, list, log, err);
    }
    free(text);
    return rc;
}

static int read_fd(int fd, char **buf, size_t *n) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    *n = (size_t)st.st_size;
    *buf = xmalloc(*n + 1);
    size_t got = 0;
    while (got < *n) {
        ssize_t r = pread(fd, *buf + got, *n - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

static void fsync_parent(const char *path) {
    char *dir = exp_path_dir(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) fsync(fd), close(fd); /* the new name must survive a crash too */
    free(dir);
}

static int open_locked(const char *path, Error *err) {
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    fchmod(fd, 0600); /* participant data: owner only, even if made by hand */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return error_set(err, "%s is in use by another session of this participant", path);
        return error_set(err, "%s: cannot lock: %s", path, strerror(e));
    }
    return fd;
}

int exp_triallog_open(const char *path, const TrialList *list, TrialLog *log, Error *err) {
    memset(log, 0, sizeof *log);
    log->fd = -1;
    int fd = open_locked(path, err);
    if (fd < 0) return -1;
    char *buf = NULL;
    size_t n = 0, complete = 0;
    int rc = 0;
    if (read_fd(fd, &buf, &n) != 0)
        rc = error_set(err, "%s: cannot read: %s", path, strerror(errno));
    if (rc == 0 && exp_triallog_scan(buf, n, list, log, &complete, err) != 0)
        rc = error_prefix(err, "%s", path);
    free(buf);
    if (rc == 0 && complete < n) { /* repair: drop the partial last line */
        if (ftruncate(fd, (off_t)complete) != 0 || fsync(fd) != 0)
            rc = error_set(err, "%s: cannot repair a half-written last line: %s", path,
                           strerror(errno));
        log->repaired_bytes = (long)(n - complete);
    }
    if (rc == 0 && complete == 0) {
        if (write_all(fd, HEADER, strlen(HEADER)) != 0 || fsync(fd) != 0) {
            rc = error_set(err, "%s: cannot write: %s", path, strerror(errno));
            if (ftruncate(fd, 0) != 0) { /* nothing more to do; reported above */
            }
        }
        fsync_parent(path);
    }
    if (rc != 0) {
        close(fd);
        free(log->correct);
        log->correct = NULL;
        return -1;
    }
    log->fd = fd;
    log->path = xstrdup(path);
    return 0;
}

int exp_triallog_append(TrialLog *log, const LogRow *r, Error *err) {
    const ExpTrial *t = r->trial;
    if (t->trial != log->n_done + 1)
        return error_set(err, "internal: trial %d logged after %d rows", t->trial, log->n_done);
    char resp[160], rt[32], line[8192];
    subjects_tsv_clean(r->response, resp, sizeof resp);
    if (isnan(r->rt_ms))
        snprintf(rt, sizeof rt, EXP_NA);
    else
        snprintf(rt, sizeof rt, "%.1f", r->rt_ms);
    int len = snprintf(
        line, sizeof line, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\n", t->trial,
        t->block, t->phase, t->clip_id, t->stimulus_path, t->condition, t->stage, t->model,
        t->true_label, resp, r->correct ? 1 : 0, rt, r->onset_iso8601, r->replays, r->session);
    if (len <= 0 || len >= (int)sizeof line) return error_set(err, "%s: row too long", log->path);
    struct stat st;
    if (fstat(log->fd, &st) != 0) return error_set(err, "%s: %s", log->path, strerror(errno));
    if (write_all(log->fd, line, (size_t)len) != 0 || fsync(log->fd) != 0) {
        int e = errno;
        /* Undo a partial row so the file keeps whole rows only. */
        if (ftruncate(log->fd, st.st_size) == 0) fsync(log->fd);
        return error_set(err, "%s: cannot save trial %d: %s (earlier trials are safe)", log->path,
                         t->trial, strerror(e));
    }
    log->correct[log->n_done++] = r->correct ? 1 : 0;
    return 0;
}

void exp_triallog_close(TrialLog *log) {
    if (log->fd >= 0) close(log->fd);
    free(log->path);
    free(log->correct);
    memset(log, 0, sizeof *log);
    log->fd = -1;
}

/* ------------------------------------------------------------- sidecar */

static const char *const DESCRIPTIONS[][2] = {
    {"trial", "Position in the participant's trial list (1-based); rows appear in this order."},
    {"block", "0 for practice; 1.. for the main blocks between breaks."},
    {"phase", "practice (with feedback), practice_scored (the practice gate) or main."},
    {"clip_id", "The natural source clip (for a metamer: the clip it was synthesized from)."},
    {"stimulus_path", "The sound file played, relative to the design file's folder."},
    {"condition", "Design condition name; 'catch' for catch trials."},
    {"stage", "Model stage the metamer matches; n/a for natural clips."},
    {"model", "Model the metamer was made with; n/a for natural clips."},
    {"true_label", "The correct answer (the natural clip's label)."},
    {"response", "The answer given: a vocabulary word, or cant_tell."},
    {"correct", "1 if response equals true_label (case-insensitive), else 0."},
    {"rt_ms", "Response time from stimulus onset at the output (monotonic clock, corrected "
              "by the device's reported output latency); n/a for simulated observers."},
    {"onset_iso8601", "Wall-clock time of the stimulus onset (first play)."},
    {"replays", "Number of extra plays the participant asked for."},
    {"session", "Session in which the trial was answered (a resumed run starts a new one)."}};

static json_t *session_json(const SessionInfo *s) {
    json_t *o =
        json_pack("{s:i,s:s,s:i,s:s,s:s,s:i}", "session", s->session, "start", s->start_iso8601,
                  "first_trial", s->first_trial, "observer", s->observer, "audio_device",
                  s->audio_device ? s->audio_device : EXP_NA, "sample_rate", s->sample_rate);
    json_object_set_new(o, "output_latency_s",
                        s->sample_rate ? json_real(s->output_latency_s) : json_null());
    json_object_set_new(o, "repaired_bytes", json_integer(s->repaired_bytes));
    return o;
}

int exp_sidecar_write(const char *json_path, const SessionInfo *s, Error *err) {
    json_t *old = json_load_file(json_path, 0, NULL), *sessions = json_array();
    json_t *prev = old ? json_object_get(old, "Sessions") : NULL;
    for (size_t i = 0; json_is_array(prev) && i < json_array_size(prev); i++)
        json_array_append(sessions, json_array_get(prev, i));
    json_decref(old);
    json_array_append_new(sessions, session_json(s));
    json_t *root = json_object();
    json_object_set_new(root, "TaskName", json_string(s->task));
    for (size_t i = 0; i < sizeof DESCRIPTIONS / sizeof DESCRIPTIONS[0]; i++)
        json_object_set_new(root, DESCRIPTIONS[i][0],
                            json_pack("{s:s}", "Description", DESCRIPTIONS[i][1]));
    json_object_set_new(json_object_get(root, "rt_ms"), "Units", json_string("ms"));
    json_object_set_new(root, "SoftwareName", json_string("metamers"));
    json_object_set_new(root, "SoftwareVersion", json_string(METAMERS_VERSION));
    json_object_set_new(root, "DesignFile", json_string(s->design_path));
    json_object_set_new(root, "DesignSHA256", json_string(s->design_sha256));
    json_object_set_new(root, "TrialListFile", json_string(s->list_path));
    json_object_set_new(root, "TrialListSHA256", json_string(s->list_sha256));
    json_object_set_new(root, "Sessions", sessions);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    size_t n = strlen(text);
    int rc = atomic_write_file(json_path, text, n, 0600, err);
    free(text);
    return rc;
}
