/* participants.tsv: load, locked update, atomic rewrite (see subjects.h). */
#include "subjects.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The columns the runner maintains, in the order a new file gets them. */
static const char *const COLUMNS[] = {"participant_id", "observer",        "sessions",
                                      "screening",      "screening_score", "practice",
                                      "excluded",       "exclusion_reason"};
#define N_COLUMNS ((int)(sizeof COLUMNS / sizeof COLUMNS[0]))

static const char PARTICIPANTS_JSON[] =
    "{\n"
    "  \"participant_id\": {\"Description\": \"Pseudonymous participant label; no "
    "identifying data is stored anywhere in this data set.\"},\n"
    "  \"observer\": {\"Description\": \"'human', or the spec of a simulated observer "
    "(e.g. oracle,lapse=0.05 or table:predictions.csv) that answered through the same "
    "trial loop.\"},\n"
    "  \"sessions\": {\"Description\": \"Number of sessions started (a resumed session "
    "counts again).\"},\n"
    "  \"screening\": {\"Description\": \"Headphone screening result.\", \"Levels\": "
    "{\"pass\": \"passed\", \"fail\": \"failed\", \"n/a\": \"not run\"}},\n"
    "  \"screening_score\": {\"Description\": \"Correct screening trials / trials, e.g. "
    "5/6.\"},\n"
    "  \"practice\": {\"Description\": \"Scored practice gate.\", \"Levels\": {\"pass\": "
    "\"reached the criterion\", \"fail\": \"below the criterion; session ended\", "
    "\"n/a\": \"not reached yet\"}},\n"
    "  \"excluded\": {\"Description\": \"1 if the participant is excluded from "
    "analysis.\", \"Levels\": {\"0\": \"included\", \"1\": \"excluded\"}},\n"
    "  \"exclusion_reason\": {\"Description\": \"Why the participant was excluded.\"}\n"
    "}\n";

int subjects_tsv_split(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab) break;
        *tab = 0;
        p = tab + 1;
    }
    return n;
}

void subjects_tsv_clean(const char *in, char *out, size_t cap) {
    if (!in || !*in) in = "n/a";
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++)
        out[i] = (in[i] == '\t' || in[i] == '\n' || in[i] == '\r') ? ' ' : in[i] == '"' ? '\'' : in[i];
    out[i] = 0;
}

int subject_id_normalize(const char *in, char out[SUBJECT_ID_MAX], Error *err) {
    if (strncmp(in, "sub-", 4) == 0) in += 4;
    size_t n = strlen(in);
    int digits = n > 0;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)in[i]))
            return error_set(err,
                             "participant ID '%s' is not a BIDS label (letters and "
                             "digits only)",
                             in);
        if (!isdigit((unsigned char)in[i])) digits = 0;
    }
    if (n == 0 || n >= SUBJECT_ID_MAX)
        return error_set(err, "participant ID must have 1 to %d letters or digits",
                         SUBJECT_ID_MAX - 1);
    if (digits) {
        while (in[0] == '0' && in[1]) in++;
        snprintf(out, SUBJECT_ID_MAX, "%s%s", strlen(in) < 2 ? "0" : "", in);
    } else {
        snprintf(out, SUBJECT_ID_MAX, "%s", in);
    }
    return 0;
}

/* ------------------------------------------------------------ table I/O */

void subjects_table_free(SubjectsTable *t) {
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) free(t->cells[r][c]);
        free(t->cells[r]);
    }
    for (int c = 0; c < t->ncols; c++) free(t->cols[c]);
    free(t->cells);
    free(t->cols);
    memset(t, 0, sizeof *t);
}

static int column(const SubjectsTable *t, const char *name) {
    for (int c = 0; c < t->ncols; c++)
        if (strcmp(t->cols[c], name) == 0) return c;
    return -1;
}

static int add_column(SubjectsTable *t, const char *name) {
    t->cols = realloc(t->cols, sizeof(char *) * (t->ncols + 1));
    if (!t->cols) abort();
    t->cols[t->ncols] = xstrdup(name);
    for (int r = 0; r < t->nrows; r++) {
        t->cells[r] = realloc(t->cells[r], sizeof(char *) * (t->ncols + 1));
        if (!t->cells[r]) abort();
        t->cells[r][t->ncols] = xstrdup("n/a");
    }
    return t->ncols++;
}

static int add_row(SubjectsTable *t) {
    t->cells = realloc(t->cells, sizeof(char **) * (t->nrows + 1));
    if (!t->cells) abort();
    t->cells[t->nrows] = xcalloc(t->ncols, sizeof(char *));
    for (int c = 0; c < t->ncols; c++) t->cells[t->nrows][c] = xstrdup("n/a");
    return t->nrows++;
}

static void set_cell(SubjectsTable *t, int row, const char *name, const char *value) {
    int c = column(t, name);
    if (c < 0) c = add_column(t, name);
    char clean[512];
    subjects_tsv_clean(value, clean, sizeof clean);
    free(t->cells[row][c]);
    t->cells[row][c] = xstrdup(clean);
}

static const char *get_cell(const SubjectsTable *t, int row, const char *name) {
    int c = column(t, name);
    return c < 0 ? "n/a" : t->cells[row][c];
}

static void exp_path_join(char *out, size_t cap, const char *dir, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

static int parse_table(SubjectsTable *t, char *data, const char *path, Error *err) {
    char *save = NULL, *line = strtok_r(data, "\n", &save);
    if (!line) return 0;
    char *fields[64];
    int n = subjects_tsv_split(line, fields, 64);
    for (int i = 0; i < n; i++) {
        char *f = fields[i];
        f[strcspn(f, "\r")] = 0;
        add_column(t, f);
    }
    if (column(t, "participant_id") != 0)
        return error_set(err, "%s: first column must be participant_id", path);
    int lineno = 1;
    while ((line = strtok_r(NULL, "\n", &save))) {
        lineno++;
        line[strcspn(line, "\r")] = 0;
        if (!*line) continue;
        int k = subjects_tsv_split(line, fields, 64);
        if (k != t->ncols)
            return error_set(err, "%s:%d: %d fields, header has %d", path, lineno, k, t->ncols);
        int r = add_row(t);
        for (int c = 0; c < k; c++) {
            free(t->cells[r][c]);
            t->cells[r][c] = xstrdup(fields[c]);
        }
    }
    return 0;
}

int subjects_load(const char *data_dir, SubjectsTable *t, Error *err) {
    memset(t, 0, sizeof *t);
    char path[4096];
    exp_path_join(path, sizeof path, data_dir, "participants.tsv");
    char *data = NULL;
    size_t size = 0;
    if (access(path, F_OK) != 0) {
        for (int c = 0; c < N_COLUMNS; c++) add_column(t, COLUMNS[c]);
        return 0;
    }
    if (read_file(path, &data, &size, err) != 0) return -1;
    int rc = parse_table(t, data, path, err);
    free(data);
    for (int c = 0; rc == 0 && c < N_COLUMNS; c++)
        if (column(t, COLUMNS[c]) < 0) add_column(t, COLUMNS[c]);
    if (rc != 0) subjects_table_free(t);
    return rc;
}

static int save_table(const char *data_dir, const SubjectsTable *t, Error *err) {
    char path[4096];
    exp_path_join(path, sizeof path, data_dir, "participants.tsv");
    AtomicFile af;
    if (atomic_open(&af, path, SUBJECTS_FILE_MODE, err) != 0) return -1;
    for (int c = 0; c < t->ncols; c++) fprintf(af.f, "%s%s", c ? "\t" : "", t->cols[c]);
    fputc('\n', af.f);
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) fprintf(af.f, "%s%s", c ? "\t" : "", t->cells[r][c]);
        fputc('\n', af.f);
    }
    if (atomic_commit(&af, err) != 0) return -1;
    exp_path_join(path, sizeof path, data_dir, "participants.json");
    if (access(path, F_OK) != 0)
        return atomic_write_file(path, PARTICIPANTS_JSON, strlen(PARTICIPANTS_JSON),
                                 SUBJECTS_FILE_MODE, err);
    return 0;
}

int subjects_find(const SubjectsTable *t, const char *id) {
    char want[SUBJECT_ID_MAX + 8];
    snprintf(want, sizeof want, "sub-%s", id);
    for (int r = 0; r < t->nrows; r++)
        if (strcmp(t->cells[r][0], want) == 0) return r;
    return -1;
}

void subjects_row_get(const SubjectsTable *t, int row, Participant *p) {
    memset(p, 0, sizeof *p);
    const char *id = t->cells[row][0];
    snprintf(p->id, sizeof p->id, "%s", strncmp(id, "sub-", 4) == 0 ? id + 4 : id);
    snprintf(p->observer, sizeof p->observer, "%s", get_cell(t, row, "observer"));
    p->sessions = atoi(get_cell(t, row, "sessions"));
    snprintf(p->screening, sizeof p->screening, "%s", get_cell(t, row, "screening"));
    snprintf(p->screening_score, sizeof p->screening_score, "%s",
             get_cell(t, row, "screening_score"));
    snprintf(p->practice, sizeof p->practice, "%s", get_cell(t, row, "practice"));
    p->excluded = strcmp(get_cell(t, row, "excluded"), "1") == 0;
    snprintf(p->exclusion_reason, sizeof p->exclusion_reason, "%s",
             get_cell(t, row, "exclusion_reason"));
}

void subjects_row_set(SubjectsTable *t, int row, const Participant *p) {
    char buf[64];
    snprintf(buf, sizeof buf, "sub-%s", p->id);
    set_cell(t, row, "participant_id", buf);
    set_cell(t, row, "observer", p->observer);
    snprintf(buf, sizeof buf, "%d", p->sessions);
    set_cell(t, row, "sessions", buf);
    set_cell(t, row, "screening", p->screening);
    set_cell(t, row, "screening_score", p->screening_score);
    set_cell(t, row, "practice", p->practice);
    set_cell(t, row, "excluded", p->excluded ? "1" : "0");
    set_cell(t, row, "exclusion_reason", p->excluded ? p->exclusion_reason : "n/a");
}

/* ------------------------------------------------------ locked updates */

/* Holds an exclusive flock for the whole read-modify-write; released by close. */
static int lock_dir(const char *data_dir, Error *err) {
    if (make_dirs(data_dir, SUBJECTS_DIR_MODE, err) != 0) return -1;
    char path[4096];
    exp_path_join(path, sizeof path, data_dir, ".participants.lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, SUBJECTS_FILE_MODE);
    if (fd < 0) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    while (flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        close(fd);
        return error_set(err, "%s: cannot lock: %s", path, strerror(errno));
    }
    return fd;
}

typedef int (*TableEdit)(SubjectsTable *t, void *ctx, Error *err);

static int edit_table(const char *data_dir, TableEdit fn, void *ctx, Error *err) {
    int fd = lock_dir(data_dir, err);
    if (fd < 0) return -1;
    SubjectsTable t;
    int rc = subjects_load(data_dir, &t, err);
    if (rc == 0) {
        rc = fn(&t, ctx, err);
        if (rc == 0) rc = save_table(data_dir, &t, err);
        subjects_table_free(&t);
    }
    close(fd);
    return rc;
}

typedef struct {
    const char *id, *observer;
    char *out_id;
} AddCtx;

static int next_number(const SubjectsTable *t) {
    long best = 0;
    for (int r = 0; r < t->nrows; r++) {
        const char *id = t->cells[r][0] + (strncmp(t->cells[r][0], "sub-", 4) ? 0 : 4);
        char *end;
        long v = strtol(id, &end, 10);
        if (*id && !*end && v > best) best = v;
    }
    return (int)best + 1;
}

static int add_edit(SubjectsTable *t, void *vctx, Error *err) {
    AddCtx *c = vctx;
    char id[SUBJECT_ID_MAX];
    if (c->id) {
        if (subject_id_normalize(c->id, id, err) != 0) return -1;
    } else {
        snprintf(id, sizeof id, "%02d", next_number(t));
    }
    if (subjects_find(t, id) >= 0) return error_set(err, "sub-%s is already registered", id);
    Participant p = {0};
    snprintf(p.id, sizeof p.id, "%s", id);
    snprintf(p.observer, sizeof p.observer, "%s", c->observer ? c->observer : "human");
    strcpy(p.screening, "n/a");
    strcpy(p.screening_score, "n/a");
    strcpy(p.practice, "n/a");
    subjects_row_set(t, add_row(t), &p);
    snprintf(c->out_id, SUBJECT_ID_MAX, "%s", id);
    return 0;
}

int subjects_add(const char *data_dir, const char *id, const char *observer,
                 char out_id[SUBJECT_ID_MAX], Error *err) {
    AddCtx c = {id, observer, out_id};
    return edit_table(data_dir, add_edit, &c, err);
}

int subjects_get(const char *data_dir, const char *id, Participant *p, Error *err) {
    char canon[SUBJECT_ID_MAX];
    if (subject_id_normalize(id, canon, err) != 0) return -1;
    SubjectsTable t;
    if (subjects_load(data_dir, &t, err) != 0) return -1;
    int r = subjects_find(&t, canon);
    if (r >= 0) subjects_row_get(&t, r, p);
    subjects_table_free(&t);
    if (r < 0)
        return error_set(err,
                         "sub-%s is not registered in %s/participants.tsv (add it with "
                         "`metamers subjects add`)",
                         canon, data_dir);
    return 0;
}

typedef struct {
    const char *id;
    SubjectUpdate fn;
    void *ctx;
} UpdateCtx;

static int update_edit(SubjectsTable *t, void *vctx, Error *err) {
    UpdateCtx *c = vctx;
    int r = subjects_find(t, c->id);
    if (r < 0) return error_set(err, "sub-%s is not registered", c->id);
    Participant p;
    subjects_row_get(t, r, &p);
    char keep[SUBJECT_ID_MAX];
    memcpy(keep, p.id, sizeof keep);
    if (c->fn(&p, c->ctx, err) != 0) return -1;
    memcpy(p.id, keep, sizeof keep);
    subjects_row_set(t, r, &p);
    return 0;
}

int subjects_update(const char *data_dir, const char *id, SubjectUpdate fn, void *ctx, Error *err) {
    char canon[SUBJECT_ID_MAX];
    if (subject_id_normalize(id, canon, err) != 0) return -1;
    UpdateCtx c = {canon, fn, ctx};
    return edit_table(data_dir, update_edit, &c, err);
}

typedef struct {
    int excluded;
    const char *reason;
} ExcludeCtx;

static int exclude_fn(Participant *p, void *vctx, Error *err) {
    ExcludeCtx *c = vctx;
    (void)err;
    p->excluded = c->excluded;
    snprintf(p->exclusion_reason, sizeof p->exclusion_reason, "%s",
             c->excluded && c->reason ? c->reason : "n/a");
    return 0;
}

int subjects_set_excluded(const char *data_dir, const char *id, int excluded, const char *reason,
                          Error *err) {
    if (excluded && (!reason || !*reason))
        return error_set(err, "an exclusion needs a reason (--reason TEXT)");
    ExcludeCtx c = {excluded, reason};
    return subjects_update(data_dir, id, exclude_fn, &c, err);
}

int subjects_beh_dir(const char *data_dir, const char *id, char *beh_dir, size_t cap, Error *err) {
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/sub-%s", data_dir, id);
    if (make_dirs(sub, SUBJECTS_DIR_MODE, err) != 0) return -1;
    /* make_dirs keeps existing directories as they are; participant folders
     * must not be readable by other users even if created by hand. The data
     * set's root is the lab's to choose and is left alone. */
    chmod(sub, SUBJECTS_DIR_MODE);
    snprintf(beh_dir, cap, "%s/beh", sub);
    if (make_dirs(beh_dir, SUBJECTS_DIR_MODE, err) != 0) return -1;
    chmod(beh_dir, SUBJECTS_DIR_MODE);
    return 0;
}
