/* subjects: the participant registry of a BIDS data set.
 *
 * <data_dir>/participants.tsv (BIDS) lists pseudonymous participant IDs and
 * what the runner learns about them: the observer (a person, or a simulated
 * observer's spec), how many sessions were started, the headphone-screening
 * result, the practice gate, and an exclusion flag with its reason. Nothing
 * identifying is ever asked for or stored. participants.json describes the
 * columns.
 *
 * Safety: files are written 0600 and directories 0700 (the data set may sit on
 * a shared lab machine); every change is a locked read-modify-write
 * (flock on <data_dir>/.participants.lock) that rewrites the file atomically
 * (temp file, fsync, rename), so two terminals cannot lose each other's
 * updates and a crash never leaves half a table. Columns the lab added by hand
 * are kept on rewrite.
 *
 * IDs are BIDS labels ([A-Za-z0-9]+), given with or without "sub-". Numeric
 * IDs are canonical with at least two digits ("7", "007" -> "07"), so they
 * match the trial lists of `metamers experiment build`.
 */
#ifndef SUBJECTS_H
#define SUBJECTS_H

#include "../core/core.h"

#define SUBJECTS_FILE_MODE 0600
#define SUBJECTS_DIR_MODE 0700
#define SUBJECT_ID_MAX 32

/* One participant, as the runner reads and updates it. */
typedef struct {
    char id[SUBJECT_ID_MAX];    /* label without "sub-" */
    char observer[256];         /* "human", or a simulated observer spec */
    int sessions;               /* sessions started (each resume counts) */
    char screening[8];          /* pass | fail | n/a */
    char screening_score[16];   /* e.g. "5/6", or n/a */
    char practice[8];           /* pass | fail | n/a */
    int excluded;               /* 0/1 */
    char exclusion_reason[256]; /* n/a when not excluded */
} Participant;

/* participants.tsv as a table of strings (keeps unknown columns). */
typedef struct {
    int ncols, nrows;
    char **cols;   /* header */
    char ***cells; /* nrows x ncols */
} SubjectsTable;

/* Canonical ID from "07", "7", "sub-07", "pilotA" (BIDS label). */
int subject_id_normalize(const char *in, char out[SUBJECT_ID_MAX], Error *err);

/* Loads <data_dir>/participants.tsv; a missing file is an empty table. */
int subjects_load(const char *data_dir, SubjectsTable *t, Error *err);
void subjects_table_free(SubjectsTable *t);
int subjects_find(const SubjectsTable *t, const char *id); /* row or -1 */
void subjects_row_get(const SubjectsTable *t, int row, Participant *p);
void subjects_row_set(SubjectsTable *t, int row, const Participant *p);

/* Adds a participant (id NULL: the next free number, "01", "02", ...).
 * observer NULL means "human". The canonical ID goes to out_id. Refuses an
 * existing ID. Creates data_dir (0700) when needed. */
int subjects_add(const char *data_dir, const char *id, const char *observer,
                 char out_id[SUBJECT_ID_MAX], Error *err);
/* Reads one participant; -1 with "sub-XX is not registered ..." if absent. */
int subjects_get(const char *data_dir, const char *id, Participant *p, Error *err);
/* Locked read-modify-write of one participant's row. fn may change any field
 * but the ID; it returns 0, or -1 (with err) to leave the file unchanged. */
typedef int (*SubjectUpdate)(Participant *p, void *ctx, Error *err);
int subjects_update(const char *data_dir, const char *id, SubjectUpdate fn, void *ctx, Error *err);
/* Sets or clears the exclusion flag (reason required when excluding). */
int subjects_set_excluded(const char *data_dir, const char *id, int excluded, const char *reason,
                          Error *err);

/* Creates <data_dir>/sub-<id>/beh (0700) and writes its path to beh_dir. */
int subjects_beh_dir(const char *data_dir, const char *id, char *beh_dir, size_t cap, Error *err);

/* TSV helpers shared with the experiment logs. These files are written
 * unquoted, so values must not contain tabs or newlines, and must not
 * contain double quotes either: quote-aware readers (pandas, R, the
 * analysis module) would take a leading '"' as the start of a quoted field.
 * subjects_tsv_split cuts line in place and returns the number of fields
 * (at most max). subjects_tsv_clean copies a value with tabs, CR and LF
 * replaced by spaces and '"' by '\'' ("n/a" when empty). */
int subjects_tsv_split(char *line, char **fields, int max);
void subjects_tsv_clean(const char *in, char *out, size_t cap);

/* `metamers subjects add|list|exclude` (argv[0] = "add", ...). */
int subjects_cmd(int argc, char **argv);

#endif
