/* Opening a session: everything that can fail (design changed since the
 * lists were built, unknown or excluded participant, log belonging to another
 * list, missing or unreadable stimulus, missing or busy audio device,
 * observer without predictions) fails here, before the participant sees the
 * first screen, never in the middle of the session. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static int load_lists(Session *s, Error *err) {
    char *lists = s->a.lists ? xstrdup(s->a.lists) : exp_default_lists_dir(s->a.design);
    int rc = exp_buildinfo_read(lists, &s->b, err);
    if (rc == 0 && strcmp(s->b.design_sha256, s->d.sha256) != 0)
        rc = error_set(err,
                       "%s changed since its trial lists in %s were built; restore it (a "
                       "running study must not change), or build new lists elsewhere",
                       s->a.design, lists);
    if (rc == 0) {
        exp_trials_list_path(s->list_path, sizeof s->list_path, lists, s->id);
        if (access(s->list_path, F_OK) != 0)
            rc = error_set(err,
                           "no trial list for sub-%s in %s (lists were built for %d "
                           "participants; `metamers experiment build --participants N` "
                           "adds more)",
                           s->id, lists, s->b.participants);
        else
            rc = exp_trials_read(s->list_path, &s->list, err);
    }
    free(lists);
    return rc;
}

static int check_participant(Session *s, Error *err) {
    const char *who = s->human ? "human" : s->a.observer;
    if (subjects_get(s->a.data_dir, s->id, &s->p, err) != 0) {
        if (s->human) return -1; /* people are registered first (`subjects add`) */
        char added[SUBJECT_ID_MAX];
        if (subjects_add(s->a.data_dir, s->id, who, added, err) != 0 ||
            subjects_get(s->a.data_dir, s->id, &s->p, err) != 0)
            return -1;
    }
    if (strcmp(s->p.observer, who) != 0)
        return error_set(err,
                         "sub-%s is registered for observer \"%s\", not \"%s\"; use "
                         "another ID",
                         s->id, s->p.observer, who);
    if (s->p.excluded)
        return error_set(err,
                         "sub-%s is excluded (%s); no session started (`metamers subjects "
                         "exclude %s --undo` includes them again)",
                         s->id, s->p.exclusion_reason, s->id);
    return 0;
}

static int open_log(Session *s, Error *err) {
    char beh[2048];
    if (subjects_beh_dir(s->a.data_dir, s->id, beh, sizeof beh, err) != 0) return -1;
    snprintf(s->log_path, sizeof s->log_path, "%s/sub-%s_task-%s_run-%d_beh.tsv", beh, s->id,
             s->d.task, s->a.run);
    snprintf(s->json_path, sizeof s->json_path, "%s/sub-%s_task-%s_run-%d_beh.json", beh, s->id,
             s->d.task, s->a.run);
    snprintf(s->screen_path, sizeof s->screen_path, "%s/sub-%s_task-headphonecheck_beh.tsv", beh,
             s->id);
    if (exp_triallog_open(s->log_path, &s->list, &s->log, err) != 0) return -1;
    if (s->log.n_done == s->list.n)
        return error_set(err,
                         "sub-%s run %d is already complete (%d trials in %s); use --run "
                         "for another run",
                         s->id, s->a.run, s->list.n, s->log_path);
    return 0;
}

static uint64_t default_seed(const Session *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the ID */
    for (const char *p = s->id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    ExpRng r;
    exprng_seed(&r, s->d.seed, h, 0x6f627376ull);
    return exprng_next(&r);
}

static int open_observer(Session *s, Error *err) {
    ExpObserverEnv env = {
        s->d.dir, s->d.task, (const char *const *)s->b.vocab, s->b.n_vocab, "", NULL, NULL, 0};
    if (exp_observer_create(s->a.observer, &env, default_seed(s), &s->obs, err) != 0) return -1;
    s->has_obs = 1;
    int from = s->log.n_done;
    if (s->obs.obs.prepare &&
        s->obs.obs.prepare(&s->obs.obs, s->list.rows + from, s->list.n - from, err) != 0)
        return error_prefix(err, "--observer %s", s->a.observer);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Opens the output at the device's rate (a file sink: the first stimulus's
 * rate, so it holds the stimuli sample for sample), then loads every
 * remaining stimulus converted to that rate. */
static int open_audio(Session *s, Error *err) {
    int from = s->log.n_done, n = s->list.n;
    char *first = exp_path_join(s->d.dir, s->list.rows[from].stimulus_path);
    Audio probe;
    int rc = audio_read(first, 0, 0, &probe, err);
    free(first);
    if (rc != 0) return -1;
    int file_rate = probe.rate;
    audio_free(&probe);
    if (exp_audio_out_open(s->a.audio, s->a.device, s->a.rate, file_rate, &s->audio, err) != 0)
        return -1;
    int rate = exp_audio_out_rate(s->audio);
    if (s->human) printf("Loading %d sounds at %d Hz...\n", n - from, rate), fflush(stdout);
    s->sounds = xcalloc(n, sizeof(Sound));
    double *rms = xcalloc(n - from + 1, sizeof(double));
    for (int i = from; i < n; i++) {
        char *path = exp_path_join(s->d.dir, s->list.rows[i].stimulus_path);
        rc = exp_sound_load(path, rate, &s->sounds[i], err);
        free(path);
        if (rc != 0) {
            free(rms);
            return error_prefix(err, "trial %d", i + 1);
        }
        rms[i - from] = audio_rms(s->sounds[i].x, s->sounds[i].frames);
    }
    qsort(rms, n - from, sizeof(double), cmp_double);
    s->ui.level_rms = rms[(n - from) / 2] > 0 ? rms[(n - from) / 2] : 0.05;
    free(rms);
    exp_sound_noise(&s->noise, rate, 2.0, s->ui.level_rms, s->d.seed);
    return 0;
}

int exp_session_open(Session *s, Error *err) {
    s->human = s->a.observer == NULL;
    if (s->human && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)))
        return error_set(err, "a session needs a terminal (stdin and stdout); for a dry run "
                              "without one use --observer oracle");
    if (subject_id_normalize(s->a.subject, s->id, err) != 0 ||
        exp_design_load(s->a.design, &s->d, err) != 0 || load_lists(s, err) != 0 ||
        check_participant(s, err) != 0 || open_log(s, err) != 0)
        return -1;
    s->ui.d = &s->d;
    s->ui.vocab = (const char *const *)s->b.vocab;
    s->ui.n_vocab = s->b.n_vocab;
    for (int i = 0; i < s->b.n_vocab; i++)
        s->ui.vocab_has_space |= strchr(s->b.vocab[i], ' ') != NULL;
    if (s->d.mode == RESP_CHOICE && s->b.n_vocab > EXP_MAX_CHOICES)
        return error_set(err, "choice mode with %d alternatives (at most 9)", s->b.n_vocab);
    if (!s->human && open_observer(s, err) != 0) return -1;
    if (s->human || s->a.audio || s->a.device) {
        if (open_audio(s, err) != 0) return -1;
        s->ui.audio = s->audio;
    }
    return 0;
}

void exp_session_close(Session *s) {
    for (int i = 0; s->sounds && i < s->list.n; i++) exp_sound_free(&s->sounds[i]);
    free(s->sounds);
    exp_sound_free(&s->noise);
    if (s->has_obs) exp_observer_free(&s->obs);
    exp_triallog_close(&s->log);
    exp_trials_free(&s->list);
    exp_buildinfo_free(&s->b);
    exp_design_free(&s->d);
}

/* ------------------------------------------------ participants.tsv updates */

static int count_start(Participant *p, void *ctx, Error *err) {
    (void)err;
    int last = *(int *)ctx;
    p->sessions = (p->sessions > last ? p->sessions : last) + 1;
    *(int *)ctx = p->sessions;
    return 0;
}

int exp_session_count_start(Session *s, Error *err) {
    int n = s->log.last_session;
    if (subjects_update(s->a.data_dir, s->id, count_start, &n, err) != 0) return -1;
    s->session = n;
    return 0;
}

typedef struct {
    const char *which;
    int passed, score, total;
    int exclude; /* people leave at a failed gate; simulated observers go on */
} Gate;

static int record_gate(Participant *p, void *ctx, Error *err) {
    (void)err;
    const Gate *g = ctx;
    const char *v = g->passed ? "pass" : "fail";
    if (strcmp(g->which, "screening") == 0) {
        snprintf(p->screening, sizeof p->screening, "%s", v);
        snprintf(p->screening_score, sizeof p->screening_score, "%d/%d", g->score, g->total);
    } else {
        snprintf(p->practice, sizeof p->practice, "%s", v);
    }
    if (!g->passed && g->exclude) {
        p->excluded = 1;
        snprintf(p->exclusion_reason, sizeof p->exclusion_reason, "%s %d/%d below criterion",
                 strcmp(g->which, "screening") == 0 ? "headphone check" : "scored practice",
                 g->score, g->total);
    }
    return 0;
}

int exp_session_record_gate(Session *s, const char *which, int passed, int score, int total,
                            Error *err) {
    Gate g = {which, passed, score, total, s->human};
    if (subjects_update(s->a.data_dir, s->id, record_gate, &g, err) != 0) return -1;
    return record_gate(&s->p, &g, err);
}
