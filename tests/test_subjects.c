/* Tests for subjects/: the participant registry (participants.tsv). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../subjects/subjects.h"
#include "test.h"

static char *slurp(const char *path) {
    char *data = NULL;
    size_t n = 0;
    Error err;
    return read_file(path, &data, &n, &err) == 0 ? data : NULL;
}

static int mode_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

/* Runs subjects_cmd with stdout/stderr sent to a file; returns its exit code. */
static int run_cmd(TestCtx *t, char *out, size_t cap, int argc, char **argv) {
    char path[600];
    snprintf(path, sizeof path, "%s/cmd.out", test_tmpdir(t));
    fflush(stdout);
    fflush(stderr);
    int saved1 = dup(1), saved2 = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1), dup2(fd, 2), close(fd);
    int rc = subjects_cmd(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved1, 1), dup2(saved2, 2), close(saved1), close(saved2);
    char *text = slurp(path);
    snprintf(out, cap, "%s", text ? text : "");
    free(text);
    return rc;
}

TEST(subjects_id_normalize_cases) {
    char id[SUBJECT_ID_MAX];
    Error err;
    const char *in[] = {"7", "07", "007", "sub-7", "pilotA", "0", "123"};
    const char *want[] = {"07", "07", "07", "07", "pilotA", "00", "123"};
    for (int i = 0; i < 7; i++) {
        REQUIRE(t, subject_id_normalize(in[i], id, &err) == 0, "%s: %s", in[i], err.msg);
        CHECK(t, strcmp(id, want[i]) == 0, "%s -> %s, want %s", in[i], id, want[i]);
    }
    CHECK(t, subject_id_normalize("a b", id, &err) != 0 && strstr(err.msg, "BIDS"), "space");
    CHECK(t, subject_id_normalize("", id, &err) != 0, "empty");
    CHECK(t, subject_id_normalize("x_1", id, &err) != 0, "underscore is not a BIDS label");
}

TEST(subjects_add_list_exclude_and_modes) {
    char data[600], out[4096];
    snprintf(data, sizeof data, "%s/subjects", test_tmpdir(t));
    char *add[] = {"add", "--data-dir", data, NULL};
    REQUIRE(t, run_cmd(t, out, sizeof out, 3, add) == 0, "add: %s", out);
    CHECK(t, strcmp(out, "sub-01\n") == 0, "first id: %s", out);
    run_cmd(t, out, sizeof out, 3, add);
    CHECK(t, strcmp(out, "sub-02\n") == 0, "second id: %s", out);
    char *add7[] = {"subjects", "add", "--id", "7", "--data-dir", data, NULL};
    REQUIRE(t, run_cmd(t, out, sizeof out, 6, add7) == 0, "add 7: %s", out);
    CHECK(t, strcmp(out, "sub-07\n") == 0, "explicit id: %s", out);
    CHECK(t, run_cmd(t, out, sizeof out, 6, add7) != 0 && strstr(out, "already registered"),
          "duplicate: %s", out);
    run_cmd(t, out, sizeof out, 3, add);
    CHECK(t, strcmp(out, "sub-08\n") == 0, "next after 07: %s", out);

    char *ex_noreason[] = {"exclude", "02", "--data-dir", data, NULL};
    CHECK(t, run_cmd(t, out, sizeof out, 4, ex_noreason) != 0 && strstr(out, "--reason"),
          "exclude needs a reason: %s", out);
    char *ex[] = {"exclude", "02", "--reason", "\"fell\" asleep\tbadly", "--data-dir", data, NULL};
    CHECK(t, run_cmd(t, out, sizeof out, 6, ex) == 0, "exclude: %s", out);
    char *ex_missing[] = {"exclude", "55", "--reason", "x", "--data-dir", data, NULL};
    CHECK(t, run_cmd(t, out, sizeof out, 6, ex_missing) != 0 && strstr(out, "sub-55"),
          "unknown participant: %s", out);
    char *list[] = {"list", "--data-dir", data, NULL};
    REQUIRE(t, run_cmd(t, out, sizeof out, 3, list) == 0, "list: %s", out);
    CHECK(t, strstr(out, "sub-02") && strstr(out, "'fell' asleep badly"), "list shows: %s", out);

    char path[700];
    snprintf(path, sizeof path, "%s/participants.tsv", data);
    char *tsv = slurp(path);
    REQUIRE(t, tsv != NULL, "participants.tsv exists");
    const char *header = "participant_id\tobserver\tsessions\tscreening\tscreening_score\t"
                         "practice\texcluded\texclusion_reason\n";
    CHECK(t, strncmp(tsv, header, strlen(header)) == 0, "header: %s", tsv);
    CHECK(t, strstr(tsv, "sub-02\thuman\t0\tn/a\tn/a\tn/a\t1\t'fell' asleep badly\n"),
          "row of 02 (tab and quotes in the reason cleaned): %s", tsv);
    free(tsv);
    /* the analysis reads participants.tsv with the quote-aware reader */
    Table tab;
    Error terr;
    CHECK(t, table_load(path, '\t', 0, &tab, &terr) == 0, "quote-aware read: %s", terr.msg);
    table_free(&tab);
    CHECK(t, mode_of(path) == 0600, "participants.tsv mode %o", mode_of(path));
    snprintf(path, sizeof path, "%s/participants.json", data);
    CHECK(t, mode_of(path) == 0600, "participants.json mode %o", mode_of(path));
    CHECK(t, mode_of(data) == 0700, "data dir mode %o", mode_of(data));

    char *undo[] = {"exclude", "02", "--undo", "--data-dir", data, NULL};
    CHECK(t, run_cmd(t, out, sizeof out, 5, undo) == 0, "undo: %s", out);
    Participant p;
    Error err;
    REQUIRE(t, subjects_get(data, "2", &p, &err) == 0, "%s", err.msg);
    CHECK(t, !p.excluded && strcmp(p.exclusion_reason, "n/a") == 0, "included again");
    char beh[1024];
    REQUIRE(t, subjects_beh_dir(data, "02", beh, sizeof beh, &err) == 0, "%s", err.msg);
    CHECK(t, mode_of(beh) == 0700, "beh dir mode %o", mode_of(beh));
    snprintf(path, sizeof path, "%s/sub-02", data);
    CHECK(t, mode_of(path) == 0700, "sub dir mode %o", mode_of(path));
}

static int bump(Participant *p, void *ctx, Error *err) {
    (void)ctx, (void)err;
    p->sessions++;
    return 0;
}

TEST(subjects_keep_extra_columns_and_serialize_updates) {
    char data[600], path[700];
    snprintf(data, sizeof data, "%s/s", test_tmpdir(t));
    mkdir(data, 0700);
    snprintf(path, sizeof path, "%s/participants.tsv", data);
    FILE *f = fopen(path, "w");
    REQUIRE(t, f != NULL, "create");
    fputs("participant_id\tgroup\nsub-01\tA\n", f); /* a lab's own column */
    fclose(f);
    /* Four processes update the same row 25 times each: the lock must make
     * every read-modify-write see the previous one. */
    Error err;
    Participant p;
    REQUIRE(t, subjects_update(data, "01", bump, NULL, &err) == 0, "%s", err.msg);
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        if ((kids[k] = fork()) == 0) {
            Error e;
            for (int i = 0; i < 25; i++)
                if (subjects_update(data, "01", bump, NULL, &e) != 0) _exit(1);
            _exit(0);
        }
    }
    for (int k = 0; k < 4; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        CHECK(t, WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d", k);
    }
    REQUIRE(t, subjects_get(data, "01", &p, &err) == 0, "%s", err.msg);
    CHECK(t, p.sessions == 101, "sessions %d, want 101 (no lost update)", p.sessions);
    char *tsv = slurp(path);
    CHECK(t, tsv && strncmp(tsv, "participant_id\tgroup\t", 21) == 0 && strstr(tsv, "\tA\t"),
          "extra column kept: %s", tsv ? tsv : "");
    free(tsv);
    CHECK(t, mode_of(path) == 0600, "rewritten 0600: %o", mode_of(path));
}

TEST(subjects_cmd_usage_and_errors) {
    char out[4096];
    char *help[] = {"--help", NULL};
    CHECK(t, run_cmd(t, out, sizeof out, 1, help) == 0 && strstr(out, "usage"), "help");
    char *bad[] = {"frobnicate", NULL};
    CHECK(t, run_cmd(t, out, sizeof out, 1, bad) == 2 && strstr(out, "metamers subjects:"),
          "unknown action: %s", out);
    char *bad_opt[] = {"list", "--bogus", NULL};
    CHECK(t, run_cmd(t, out, sizeof out, 2, bad_opt) == 2 && strstr(out, "--bogus"),
          "unknown option: %s", out);
}
