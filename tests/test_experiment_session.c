/* Whole sessions of `metamers experiment run`:
 * - a person's session driven through a pseudo-terminal (typed answers with
 *   completion, a rejected non-word, a replay, "can't tell", Ctrl-C in the
 *   middle, then resume), checking the log row by row and that the terminal
 *   settings come back exactly;
 * - a simulated observer killed with SIGKILL at random moments 20 times,
 *   checking that no answered trial is ever lost or duplicated.
 * The child process calls experiment_cmd_run() directly (no executable
 * needed); the pty comes from posix_openpt, so no -lutil. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../experiment/internal.h"
#include "experiment_fixture.h"
#include "test.h"

typedef struct {
    int master, slave;
    pid_t pid;
    struct termios before, after; /* the terminal's settings around the session */
    int report;                   /* pipe: the session leader sends `after` through it */
    char *buf;
    size_t len, cap, mark;
} Pty;

static int pty_start(Pty *p, int argc, char **argv) {
    memset(p, 0, sizeof *p);
    p->master = posix_openpt(O_RDWR | O_NOCTTY);
    if (p->master < 0 || grantpt(p->master) != 0 || unlockpt(p->master) != 0) return -1;
    char name[256];
    snprintf(name, sizeof name, "%s", ptsname(p->master));
    p->slave = open(name, O_RDWR | O_NOCTTY); /* kept to read the settings */
    struct winsize ws = {24, 80, 0, 0};
    ioctl(p->slave, TIOCSWINSZ, &ws);
    tcgetattr(p->slave, &p->before);
    p->cap = 1 << 20;
    p->buf = malloc(p->cap);
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(NULL);
    p->pid = fork();
    if (p->pid == 0) {
        /* The session leader stays alive after the session process exits:
         * otherwise the kernel hangs the terminal up and its settings can no
         * longer be read. It ignores the Ctrl-C meant for the session. */
        setsid(); /* opening the slave now makes it the controlling terminal */
        int fd = open(name, O_RDWR);
        dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
        close(fd), close(p->master), close(p->slave), close(fds[0]);
        signal(SIGINT, SIG_IGN);
        pid_t run = fork();
        if (run == 0) {
            signal(SIGINT, SIG_DFL);
            int rc = experiment_cmd_run(argc, argv);
            fflush(NULL);
            _exit(rc);
        }
        int st = 0;
        waitpid(run, &st, 0);
        struct termios after;
        tcgetattr(0, &after);
        ssize_t w = write(fds[1], &after, sizeof after);
        (void)w;
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
    close(fds[1]);
    p->report = fds[0];
    return p->pid > 0 ? 0 : -1;
}

static void pty_pump(Pty *p, int ms) {
    struct pollfd pf = {p->master, POLLIN, 0};
    while (poll(&pf, 1, ms) > 0) {
        if (p->len + 4096 > p->cap) { /* keep the unread tail only */
            memmove(p->buf, p->buf + p->mark, p->len - p->mark);
            p->len -= p->mark, p->mark = 0;
        }
        ssize_t n = read(p->master, p->buf + p->len, p->cap - p->len - 1);
        if (n <= 0) break;
        p->len += (size_t)n;
        ms = 0;
    }
    p->buf[p->len] = 0;
}

/* Waits until text appears in output not yet consumed; consumes up to it. */
static int pty_wait(Pty *p, const char *text) {
    double end = now_seconds() + 10;
    while (now_seconds() < end) {
        pty_pump(p, 20);
        char *at = strstr(p->buf + p->mark, text);
        if (at) {
            p->mark = (size_t)(at - p->buf) + strlen(text);
            return 0;
        }
    }
    return -1;
}

static void pty_send(Pty *p, const char *keys) {
    ssize_t n = write(p->master, keys, strlen(keys));
    (void)n;
}

static int pty_finish(Pty *p) {
    int status = -1, done = 0;
    for (int i = 0; i < 500 && !done; i++) {
        pty_pump(p, 20);
        done = waitpid(p->pid, &status, WNOHANG) == p->pid;
    }
    if (!done) { /* a stuck session must fail the test, not hang it */
        kill(-p->pid, SIGKILL);
        waitpid(p->pid, &status, 0);
    }
    memset(&p->after, 0, sizeof p->after);
    if (read(p->report, &p->after, sizeof p->after) != (ssize_t)sizeof p->after)
        memset(&p->after, 0, sizeof p->after);
    close(p->report);
    close(p->master);
    close(p->slave);
    free(p->buf);
    return status;
}

static int same_termios(const struct termios *a, const struct termios *b) {
    return a->c_iflag == b->c_iflag && a->c_oflag == b->c_oflag && a->c_cflag == b->c_cflag &&
           a->c_lflag == b->c_lflag && memcmp(a->c_cc, b->c_cc, sizeof a->c_cc) == 0;
}

static const char *title(Tsv *l, int i, char *buf, size_t cap) {
    int first = i, n = 0;
    while (first > 0 && strcmp(l->f[first - 1][2], l->f[i][2]) == 0) first--;
    for (int j = 0; j < l->n; j++) n += strcmp(l->f[j][2], l->f[i][2]) == 0;
    snprintf(buf, cap, "%s - sound %d of %d", strcmp(l->f[i][2], "main") ? "Practice" : "Main part",
             i - first + 1, n);
    return buf;
}

/* Waits for trial i's screen itself: its title also shows on the "Listen..."
 * screen before the sound, when typed-ahead keys are still dropped. */
static int wait_trial(Pty *p, Tsv *l, int i, const char *prompt) {
    char tt[64];
    if (pty_wait(p, title(l, i, tt, sizeof tt)) != 0) return -1;
    return pty_wait(p, prompt);
}

static const char WORD_PROMPT[] = "What word did you hear?";

/* Answers trial i (0-based) by typing the first four letters of the label,
 * Tab (completion) and Enter, after a break screen if one comes first. */
static int answer(TestCtx *t, Pty *p, Tsv *l, int i) {
    char brk[64];
    if (i > 0 && strcmp(l->f[i][2], "main") == 0 && strcmp(l->f[i - 1][2], "main") == 0 &&
        strcmp(l->f[i][1], l->f[i - 1][1]) != 0) {
        int first = i;
        while (strcmp(l->f[first - 1][2], "main") == 0) first--;
        snprintf(brk, sizeof brk, "You have finished %d of", i - first);
        CHECK(t, pty_wait(p, brk) == 0, "break before trial %d", i + 1);
        pty_send(p, "\r");
    }
    if (wait_trial(p, l, i, WORD_PROMPT) != 0) return -1;
    char keys[64];
    snprintf(keys, sizeof keys, "%.4s\t\r", l->f[i][8]);
    pty_send(p, keys);
    if (strcmp(l->f[i][2], "practice") == 0) {
        CHECK(t, pty_wait(p, "Press Enter for the next sound.") == 0, "feedback %d", i + 1);
        pty_send(p, "\r");
    }
    return 0;
}

static const FixtureSpec PTY = {.clips = 12,
                                .with_metamers = 12,
                                .n_conds = 2,
                                .seeds = 1,
                                .trials_per_condition = 2,
                                .catch_trials = 1,
                                .practice_feedback = 1,
                                .practice_scored = 2,
                                .practice_pass = 1,
                                .replays = 1,
                                .calibration = 1,
                                .screening =
                                    "{\"test\": \"woods\", \"trials\": 2, \"pass_correct\": 0}"};

static int first_run(TestCtx *t, Pty *p, Tsv *l, const struct termios *before) {
#define STEP(cond, what) REQUIRE_RC(cond, what)
#define REQUIRE_RC(cond, what)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_fail(t, __FILE__, __LINE__, "session: %s", what);                                 \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)
    STEP(pty_wait(p, "Press Enter to continue.") == 0, "welcome screen");
    struct termios during;
    tcgetattr(p->slave, &during);
    CHECK(t, !(during.c_lflag & (ICANON | ECHO)) && !same_termios(&during, before), "raw mode on");
    pty_send(p, "\r");
    STEP(pty_wait(p, "Setting the volume") == 0, "volume screen");
    pty_send(p, "\r");
    STEP(pty_wait(p, "Please play the noise") == 0, "must play the noise first");
    pty_send(p, " \r");
    STEP(pty_wait(p, "Headphone check") == 0 && pty_wait(p, "Press Enter to start.") == 0, "check");
    pty_send(p, "\r");
    STEP(pty_wait(p, "check 1 of 2") == 0 && pty_wait(p, "Press 1, 2 or 3.") == 0, "check 1");
    pty_send(p, "1");
    STEP(pty_wait(p, "check 2 of 2") == 0 && pty_wait(p, "Press 1, 2 or 3.") == 0, "check 2");
    pty_send(p, "2");
    STEP(pty_wait(p, "First, 1 practice sounds") == 0, "practice intro");
    pty_send(p, "\r");
    STEP(answer(t, p, l, 0) == 0, "trial 1");
    STEP(pty_wait(p, "Now 2 more practice sounds") == 0, "scored practice intro");
    pty_send(p, "\r");
    char keys[80];
    STEP(wait_trial(p, l, 1, WORD_PROMPT) == 0, "trial 2");
    pty_send(p, "zzz\r");
    STEP(pty_wait(p, "Please choose a word from the list") == 0, "non-word refused");
    snprintf(keys, sizeof keys, "\x7f\x7f\x7f%s\r", l->f[1][8]);
    pty_send(p, keys);
    STEP(wait_trial(p, l, 2, WORD_PROMPT) == 0, "trial 3");
    pty_send(p, "  "); /* a replay, then one more than allowed */
    STEP(pty_wait(p, "No more replays") == 0, "replay limit");
    snprintf(keys, sizeof keys, "%s\r", l->f[2][8]);
    pty_send(p, keys);
    STEP(pty_wait(p, "Now the main part") == 0, "main intro");
    pty_send(p, "\r");
    STEP(wait_trial(p, l, 3, WORD_PROMPT) == 0, "trial 4");
    pty_send(p, "?\r");
    STEP(pty_wait(p, "You have finished 1 of 5") == 0, "break");
    pty_send(p, "\r");
    STEP(wait_trial(p, l, 4, WORD_PROMPT) == 0, "trial 5");
    pty_send(p, "\x03"); /* Ctrl-C */
    return 0;
}

TEST(exp_pty_session_with_ctrl_c_and_resume) {
    Fixture f;
    REQUIRE(t, expfx_make(t, &PTY, "pty", &f) == 0 && expfx_build(&f, 1) == 0, "fixture");
    char out[4096], list[1024], log[1024], wav1[1024], wav2[1024];
    char *add[] = {"add", "--data-dir", f.data, NULL};
    REQUIRE(t, fx_quiet_cmd(subjects_cmd, 3, add, out, sizeof out) == 0, "%s", out);
    expfx_list_path(&f, "01", list, sizeof list);
    expfx_log_path(&f, "01", log, sizeof log);
    Tsv l;
    REQUIRE(t, fx_tsv_load(list, &l) == 0 && l.n == 8, "list of 8 trials");
    snprintf(wav1, sizeof wav1, "file:%s/run1.wav", f.dir);
    snprintf(wav2, sizeof wav2, "file:%s/run2.wav", f.dir);
    char *argv1[] = {"run",        "--design", f.design,  "--subject", "01",
                     "--data-dir", f.data,     "--audio", wav1,        NULL};
    Pty p;
    REQUIRE(t, pty_start(&p, 9, argv1) == 0, "pty");
    struct termios before = p.before, after;
    int ok = first_run(t, &p, &l, &before) == 0;
    int status = pty_finish(&p);
    after = p.after;
    REQUIRE(t, ok, "first run");
    CHECK(t, WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGINT, "exit %d",
          WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
    CHECK(t, same_termios(&before, &after),
          "terminal settings restored after Ctrl-C: "
          "iflag %x/%x oflag %x/%x lflag %x/%x",
          before.c_iflag, after.c_iflag, before.c_oflag, after.c_oflag, before.c_lflag,
          after.c_lflag);
    Tsv g;
    REQUIRE(t, fx_tsv_load(log, &g) == 0, "log");
    CHECK(t, g.n == 4 && g.partial == 0, "4 answered trials saved, got %d", g.n);
    fx_tsv_free(&g);

    char *argv2[] = {"run",        "--design", f.design,  "--subject", "01",
                     "--data-dir", f.data,     "--audio", wav2,        NULL};
    REQUIRE(t, pty_start(&p, 9, argv2) == 0, "pty 2");
    ok = pty_wait(&p, "Welcome back. 4 of 8 sounds are done") == 0;
    pty_send(&p, "\r");
    ok = ok && pty_wait(&p, "Setting the volume") == 0;
    pty_send(&p, " \r");
    for (int i = 4; ok && i < 8; i++) ok = answer(t, &p, &l, i) == 0;
    ok = ok && pty_wait(&p, "That was the last sound") == 0;
    pty_send(&p, "\r");
    status = pty_finish(&p);
    CHECK(t, ok, "second run went through");
    CHECK(t, WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);

    REQUIRE(t, fx_tsv_load(log, &g) == 0, "log");
    REQUIRE(t, g.n == 8 && g.partial == 0, "every trial exactly once: %d rows", g.n);
    for (int i = 0; i < 8; i++) {
        char **r = g.f[i];
        CHECK(t,
              atoi(r[0]) == i + 1 && strcmp(r[3], l.f[i][4]) == 0 && strcmp(r[4], l.f[i][5]) == 0,
              "row %d in list order", i + 1);
        const char *want = i == 3 ? EXP_CANT_TELL : l.f[i][8];
        CHECK(t, strcmp(r[9], want) == 0 && strcmp(r[10], i == 3 ? "0" : "1") == 0,
              "row %d answer %s (want %s)", i + 1, r[9], want);
        CHECK(t, atof(r[11]) > 0, "row %d rt %s", i + 1, r[11]);
        CHECK(t, strcmp(r[13], i == 2 ? "1" : "0") == 0, "row %d replays %s", i + 1, r[13]);
        CHECK(t, strcmp(r[14], i < 4 ? "1" : "2") == 0, "row %d session %s", i + 1, r[14]);
    }
    fx_tsv_free(&g);
    fx_tsv_free(&l);
    Participant pa;
    Error err;
    REQUIRE(t, subjects_get(f.data, "01", &pa, &err) == 0, "%s", err.msg);
    CHECK(t,
          pa.sessions == 2 && strcmp(pa.screening, "pass") == 0 &&
              strcmp(pa.practice, "pass") == 0 && !pa.excluded,
          "participants.tsv: sessions %d screening %s practice %s", pa.sessions, pa.screening,
          pa.practice);
    CHECK(t, access(wav1 + 5, F_OK) == 0 && access(wav2 + 5, F_OK) == 0, "audio written");
}

/* ------------------------------------------------------------- SIGKILL */

static pid_t spawn_run(char **argv, int argc) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0), dup2(null, 1), dup2(null, 2);
        _exit(experiment_cmd_run(argc, argv));
    }
    return pid;
}

static int count_rows(const char *path) {
    size_t n = 0;
    char *b = expfx_slurp(path, &n);
    int rows = -1; /* the header */
    for (size_t i = 0; b && i < n; i++) rows += b[i] == '\n';
    free(b);
    return rows;
}

TEST(exp_sigkill_20_times_never_loses_or_duplicates_a_trial) {
    FixtureSpec s = {.clips = 70,
                     .with_metamers = 70,
                     .n_conds = 2,
                     .seeds = 1,
                     .trials_per_condition = 30,
                     .catch_trials = 2,
                     .practice_feedback = 2,
                     .practice_scored = 2,
                     .practice_pass = 0};
    Fixture f;
    REQUIRE(t, expfx_make(t, &s, "kill", &f) == 0 && expfx_build(&f, 1) == 0, "fixture");
    char ref_data[700], log[1024], ref_log[1100];
    snprintf(ref_data, sizeof ref_data, "%s/ref", f.dir);
    char obs[] = "oracle,lapse=0.25,delay_ms=3";
    char *ref_argv[] = {"run",        "--design", f.design,     "--subject", "01",
                        "--data-dir", ref_data,   "--observer", obs,         NULL};
    char *argv[] = {"run",        "--design", f.design,     "--subject", "01",
                    "--data-dir", f.data,     "--observer", obs,         NULL};
    double t0 = now_seconds();
    int status;
    waitpid(spawn_run(ref_argv, 9), &status, 0);
    double full = now_seconds() - t0; /* reported with METAMERS_TEST_VERBOSE */
    REQUIRE(t, WIFEXITED(status) && WEXITSTATUS(status) == 0, "reference run");
    snprintf(ref_log, sizeof ref_log, "%s/sub-01/beh/sub-01_task-word_run-1_beh.tsv", ref_data);
    expfx_log_path(&f, "01", log, sizeof log);
    Tsv ref;
    REQUIRE(t, fx_tsv_load(ref_log, &ref) == 0 && ref.n == 66, "reference log: %d rows", ref.n);

    unsigned seed = 12345;
    int last = 0, partial_seen = 0, progressed = 0;
    for (int k = 0; k < 20; k++) {
        pid_t pid = spawn_run(argv, 9);
        /* Let it answer 1-3 more trials, then kill at a random moment within
         * the next 3 ms: while it waits, writes, or fsyncs. */
        seed = seed * 1103515245u + 12345u;
        int target = last + 1 + (int)((seed >> 8) % 3);
        double deadline = now_seconds() + 5;
        while (count_rows(log) < target && now_seconds() < deadline &&
               waitpid(pid, &status, WNOHANG) == 0) {
            struct timespec ms = {0, 500000};
            nanosleep(&ms, NULL);
        }
        seed = seed * 1103515245u + 12345u;
        struct timespec ts = {0, (long)((seed >> 8) % 3000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        Tsv g;
        if (fx_tsv_load(log, &g) != 0) continue; /* killed before the log existed */
        CHECK(t, g.n >= last, "kill %d: rows went from %d to %d", k, last, g.n);
        for (int i = 0; i < g.n; i++)
            CHECK(t,
                  atoi(g.f[i][0]) == i + 1 && strcmp(g.f[i][3], ref.f[i][3]) == 0 &&
                      strcmp(g.f[i][9], ref.f[i][9]) == 0,
                  "kill %d: row %d is trial %s answer %s (want %d, %s)", k, i + 1, g.f[i][0],
                  g.f[i][9], i + 1, ref.f[i][9]);
        progressed += g.n > last;
        partial_seen += g.partial > 0;
        last = g.n;
        fx_tsv_free(&g);
    }
    CHECK(t, progressed >= 15 && last < 66, "only %d of 20 kills landed mid-session (%d rows)",
          progressed, last);
    waitpid(spawn_run(argv, 9), &status, 0);
    CHECK(t, WIFEXITED(status) && (WEXITSTATUS(status) == 0 || last == 66), "final run");
    Tsv g;
    REQUIRE(t, fx_tsv_load(log, &g) == 0, "final log");
    CHECK(t, g.n == 66 && g.partial == 0, "final log: %d rows, %zu partial bytes", g.n, g.partial);
    for (int i = 0; i < g.n && i < ref.n; i++)
        CHECK(t, atoi(g.f[i][0]) == i + 1 && strcmp(g.f[i][9], ref.f[i][9]) == 0, "final row %d",
              i + 1);
    fx_tsv_free(&g);
    fx_tsv_free(&ref);
    if (getenv("METAMERS_TEST_VERBOSE"))
        fprintf(stderr,
                "  full run %.3f s; %d kills progressed, %d left a partial row; %d rows before the "
                "last run\n",
                full, progressed, partial_seen, last);
}

/* ---------------------------------------------------------- choice mode */

TEST(exp_pty_choice_mode_number_keys) {
    FixtureSpec s = {.clips = 12,
                     .with_metamers = 12,
                     .n_conds = 2,
                     .seeds = 1,
                     .trials_per_condition = 2,
                     .n_labels = 4,
                     .response = "{\"mode\": \"choice\"}"};
    Fixture f;
    REQUIRE(t, expfx_make(t, &s, "choice", &f) == 0 && expfx_build(&f, 1) == 0, "fixture");
    char out[4096], list[1024], log[1024];
    char *add[] = {"add", "--data-dir", f.data, NULL};
    REQUIRE(t, fx_quiet_cmd(subjects_cmd, 3, add, out, sizeof out) == 0, "%s", out);
    expfx_list_path(&f, "01", list, sizeof list);
    expfx_log_path(&f, "01", log, sizeof log);
    Tsv l;
    REQUIRE(t, fx_tsv_load(list, &l) == 0 && l.n == 4, "4 main trials");
    char wav[1100];
    snprintf(wav, sizeof wav, "file:%s/c.wav", f.dir);
    char *argv[] = {"run",        "--design", f.design,  "--subject", "01",
                    "--data-dir", f.data,     "--audio", wav,         NULL};
    Pty p;
    REQUIRE(t, pty_start(&p, 9, argv) == 0, "pty");
    int ok = pty_wait(&p, "Press Enter to continue.") == 0;
    pty_send(&p, "\r");
    ok = ok && pty_wait(&p, "Now the main part") == 0;
    pty_send(&p, "\r");
    /* Alternatives are the task's labels in sorted order: apple apricot banana berry. */
    const char *sorted[] = {"apple", "apricot", "banana", "berry"};
    for (int i = 0; ok && i < 4; i++) {
        char key[2] = {'0', 0};
        if (i > 0 && strcmp(l.f[i][1], l.f[i - 1][1]) != 0) {
            ok = pty_wait(&p, "You have finished") == 0;
            pty_send(&p, "\r");
        }
        ok = ok && wait_trial(&p, &l, i, "Press its number.") == 0 && pty_wait(&p, "4  berry") == 0;
        for (int k = 0; k < 4 && i < 3; k++)
            if (strcmp(sorted[k], l.f[i][8]) == 0) key[0] = (char)('1' + k);
        pty_send(&p, "x"); /* not a choice: a hint, no answer */
        ok = ok && pty_wait(&p, "Please press one of the numbers shown.") == 0;
        pty_send(&p, key);
    }
    ok = ok && pty_wait(&p, "That was the last sound") == 0;
    pty_send(&p, "\r");
    int status = pty_finish(&p);
    CHECK(t, ok && WIFEXITED(status) && WEXITSTATUS(status) == 0, "session (status %d)", status);
    Tsv g;
    REQUIRE(t, fx_tsv_load(log, &g) == 0 && g.n == 4, "4 rows");
    for (int i = 0; i < 4; i++)
        CHECK(t,
              strcmp(g.f[i][9], i < 3 ? l.f[i][8] : EXP_CANT_TELL) == 0 &&
                  strcmp(g.f[i][10], i < 3 ? "1" : "0") == 0,
              "row %d: %s", i + 1, g.f[i][9]);
    fx_tsv_free(&g);
    fx_tsv_free(&l);
}

/* ------------------------------------------------------------ disk full */

#include <sys/resource.h>

TEST(exp_disk_full_keeps_whole_rows_and_resumes) {
    Fixture f;
    FixtureSpec s = {.clips = 70,
                     .with_metamers = 70,
                     .n_conds = 2,
                     .seeds = 1,
                     .trials_per_condition = 30,
                     .catch_trials = 2,
                     .practice_feedback = 2,
                     .practice_scored = 2,
                     .practice_pass = 0};
    REQUIRE(t, expfx_make(t, &s, "full", &f) == 0 && expfx_build(&f, 1) == 0, "fixture");
    char log[1024], errpath[1100];
    expfx_log_path(&f, "01", log, sizeof log);
    snprintf(errpath, sizeof errpath, "%s/err.txt", f.dir);
    char obs[] = "oracle";
    char *argv[] = {"run",        "--design", f.design,     "--subject", "01",
                    "--data-dir", f.data,     "--observer", obs,         NULL};
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Files may not grow past 4000 bytes: the log (66 rows, ~6 kB) fills
         * up mid-session, as on a full disk; the sidecar and registry fit. */
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1), dup2(fd, 2);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4000, 4000};
        setrlimit(RLIMIT_FSIZE, &rl);
        _exit(experiment_cmd_run(9, argv));
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(t, WIFEXITED(status) && WEXITSTATUS(status) == 1, "failed run exits 1");
    char *msg = expfx_slurp(errpath, NULL);
    CHECK(t, msg && strstr(msg, "cannot save trial") && strstr(msg, "earlier trials are safe"),
          "message: %s", msg ? msg : "");
    free(msg);
    Tsv g;
    REQUIRE(t, fx_tsv_load(log, &g) == 0, "log");
    CHECK(t, g.partial == 0 && g.n > 3 && g.n < 66, "whole rows only: %d rows, %zu partial bytes",
          g.n, g.partial);
    for (int i = 0; i < g.n; i++) CHECK(t, atoi(g.f[i][0]) == i + 1, "row %d", i + 1);
    fx_tsv_free(&g);
    char out[4096];
    REQUIRE(t, expfx_run_observer(&f, "01", "oracle", NULL, NULL, out, sizeof out) == 0, "%s", out);
    REQUIRE(t, fx_tsv_load(log, &g) == 0 && g.n == 66 && g.partial == 0, "resumed to the end");
    for (int i = 0; i < g.n; i++) CHECK(t, atoi(g.f[i][0]) == i + 1, "row %d", i + 1);
    fx_tsv_free(&g);
}
