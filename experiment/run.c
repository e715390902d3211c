/* `metamers experiment run`: one session of one participant.
 *
 * Order: welcome (or "welcome back"), volume setting, headphone check (until
 * passed once), practice with feedback, scored practice, the gate, the main
 * blocks with breaks, thanks. Every trial - a person's or a simulated
 * observer's - goes through exp_session_trials: present, log (fsync), feedback.
 * The log is the state: a resumed session starts at the first trial without
 * a row, shows the screens that belong before it, and recomputes the
 * practice gate from the logged rows. */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"

enum { END_DONE = 0, END_GATE = 1 }; /* besides KEY_SIGNAL, KEY_EOF and -1 */

static int first_of(const TrialList *l, const char *phase) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->rows[i].phase, phase) == 0) return i;
    return l->n;
}

static int count_of(const TrialList *l, const char *phase) {
    int n = 0;
    for (int i = 0; i < l->n; i++) n += strcmp(l->rows[i].phase, phase) == 0;
    return n;
}

static int goodbye(Session *s, const char *why) {
    if (!s->human) return END_GATE;
    const char *lines[] = {why, "",
                           "This is the end of the session. Thank you very much for "
                           "your time! Please let the experimenter know."};
    int k = exp_ui_message(&s->ui, "Thank you", lines, 3, "Press Enter to finish.");
    return k ? k : END_GATE;
}

static int welcome(Session *s) {
    const Design *d = &s->d;
    const char *task = d->instructions ? d->instructions
                       : d->mode == RESP_WORD
                           ? "After each sound, type the word you heard (the one in the middle "
                             "of the sound). As you type, matching words from the list appear; "
                             "only words from the list can be entered."
                           : "After each sound, press the number of what you heard.";
    if (s->log.n_done > 0) {
        char line[160];
        snprintf(line, sizeof line,
                 "Welcome back. %d of %d sounds are done and saved; the "
                 "session continues where it stopped.",
                 s->log.n_done, s->list.n);
        const char *lines[] = {line, "", task};
        return exp_ui_message(&s->ui, "Listening study", lines, 3, NULL);
    }
    const char *lines[] = {
        "Welcome, and thank you for taking part.",
        "",
        "You will hear short sounds through headphones. Some are recordings; others are "
        "synthetic and may sound strange or like noise. That is expected.",
        "",
        task,
        "",
        "If you are not sure, give your best guess. There is no time limit, but please answer "
        "as soon as you know. There will be short breaks."};
    return exp_ui_message(&s->ui, "Listening study", lines, 7, NULL);
}

static int screening(Session *s, Error *err) {
    const Design *d = &s->d;
    if (d->screening == SCREEN_NONE || strcmp(s->p.screening, "pass") == 0) return 0;
    const char *lines[] = {
        "First a short check that sound reaches both ears through the headphones.", "",
        d->screening == SCREEN_WOODS
            ? "In each of the next few trials you will hear three tones, one after the other. "
              "Press 1, 2 or 3 for the tone that was the SOFTEST."
            : "In each of the next few trials you will hear three noises. One of them has a faint "
              "tone hidden in it. Press 1, 2 or 3 for the noise with the tone.",
        "", "Each trial plays once."};
    int k = exp_ui_message(&s->ui, "Headphone check", lines, 5, "Press Enter to start.");
    int score = 0;
    if (k == 0)
        k = exp_ui_screening(&s->ui, s->d.seed * 1000003u + (uint64_t)s->session, &score,
                             s->screen_path, err);
    if (k) return k;
    int passed = score >= d->screening_pass;
    if (exp_session_record_gate(s, "screening", passed, score, d->screening_trials, err) != 0)
        return -1;
    if (!passed) return goodbye(s, "The headphone check did not work out this time.");
    return 0;
}

static int intro(Session *s, Error *err) {
    if (!s->human) return 0;
    int k = welcome(s);
    if (k == 0 && s->d.calibration) k = exp_ui_calibration(&s->ui, &s->noise);
    return k ? k : screening(s, err);
}

/* The scored practice decides whether the session goes on (DESIGN.md:
 * continue only at >= 5 of 12). Evaluated from the log, once. */
static int practice_gate(Session *s, Error *err) {
    const Design *d = &s->d;
    if (d->practice_scored == 0 || strcmp(s->p.practice, "n/a") != 0) return 0;
    int from = first_of(&s->list, "practice_scored"), to = first_of(&s->list, "main"), score = 0;
    for (int i = from; i < to; i++) score += s->log.correct[i];
    int passed = score >= d->practice_pass;
    if (exp_session_record_gate(s, "practice", passed, score, to - from, err) != 0) return -1;
    if (!passed && s->human)
        return goodbye(s, "The practice showed that this task does not suit "
                          "you today - that is perfectly fine.");
    return 0;
}

/* Screens that belong before trial i (also when a session resumes at i). */
static int before_trial(Session *s, int i, Error *err) {
    const ExpTrial *t = &s->list.rows[i], *prev = i ? &s->list.rows[i - 1] : NULL;
    int starts = !prev || strcmp(prev->phase, t->phase) != 0, k = 0;
    if (starts && strcmp(t->phase, "main") == 0) {
        k = practice_gate(s, err);
        if (k) return k;
    }
    if (!s->human) return 0;
    char line[200];
    if (starts && strcmp(t->phase, "practice") == 0) {
        snprintf(line, sizeof line,
                 "First, %d practice sounds. After each one you will see "
                 "the right answer.",
                 count_of(&s->list, "practice"));
        const char *lines[] = {line};
        k = exp_ui_message(&s->ui, "Practice", lines, 1, "Press Enter to start.");
    } else if (starts && strcmp(t->phase, "practice_scored") == 0) {
        snprintf(line, sizeof line, "Now %d more practice sounds%s.",
                 count_of(&s->list, "practice_scored"),
                 s->d.practice_scored_feedback ? "" : ", this time without the answers shown");
        const char *lines[] = {line};
        k = exp_ui_message(&s->ui, "Practice", lines, 1, "Press Enter to start.");
    } else if (starts && strcmp(t->phase, "main") == 0) {
        snprintf(line, sizeof line,
                 "Now the main part: %d sounds, with short breaks in "
                 "between.",
                 count_of(&s->list, "main"));
        const char *lines[] = {"Well done, the practice is over.", "", line};
        k = exp_ui_message(&s->ui, "Main part", lines, 3, "Press Enter to start.");
    } else if (!starts && strcmp(t->phase, "main") == 0 && t->block != prev->block) {
        int first = first_of(&s->list, "main");
        k = exp_ui_break(&s->ui, i - first, s->list.n - first);
    }
    return k;
}

static void title_of(const Session *s, const ExpTrial *t, char *title, size_t cap,
                     double *progress) {
    int first = first_of(&s->list, t->phase), n = count_of(&s->list, t->phase);
    int pos = t->trial - 1 - first;
    snprintf(title, cap, "%s - sound %d of %d", strcmp(t->phase, "main") ? "Practice" : "Main part",
             pos + 1, n);
    *progress = (double)pos / n;
}

static int simulated_trial(Session *s, int i, UiAnswer *ans, Error *err) {
    memset(ans, 0, sizeof *ans);
    if (s->audio) { /* a dry run may still play (or record) the stimuli */
        if (exp_audio_out_play(s->audio, &s->sounds[i], err) != 0) return -1;
        while (exp_audio_out_busy(s->audio) && !exp_term_signal()) {
            struct timespec ms = {0, 5000000};
            nanosleep(&ms, NULL);
        }
    }
    exp_iso8601_now(ans->onset_iso8601, 0);
    return exp_observer_answer(&s->obs, &s->list.rows[i], s->ui.vocab, s->ui.n_vocab, ans->response,
                               sizeof ans->response, &ans->rt_ms, err);
}

static int feedback_due(const Session *s, const ExpTrial *t) {
    if (strcmp(t->phase, "practice") == 0) return 1;
    if (strcmp(t->phase, "practice_scored") == 0) return s->d.practice_scored_feedback;
    return s->d.feedback;
}

int exp_session_trials(Session *s, Error *err) {
    int k = intro(s, err);
    for (int i = s->log.n_done; k == 0 && i < s->list.n; i++) {
        const ExpTrial *t = &s->list.rows[i];
        if ((k = before_trial(s, i, err)) != 0) break;
        UiAnswer ans;
        if (s->human) {
            char title[80];
            double progress;
            title_of(s, t, title, sizeof title, &progress);
            k = exp_ui_trial(&s->ui, t, &s->sounds[i], title, progress, &ans, err);
        } else {
            k = simulated_trial(s, i, &ans, err);
        }
        if (k) break;
        int correct = strcasecmp(ans.response, t->true_label) == 0;
        LogRow row = {t,           ans.response, correct, ans.rt_ms, ans.onset_iso8601,
                      ans.replays, s->session};
        if (exp_triallog_append(&s->log, &row, err) != 0) return -1;
        if (s->human && feedback_due(s, t)) k = exp_ui_feedback(&s->ui, t, ans.response, correct);
        if (!k && exp_term_signal()) k = KEY_SIGNAL;
    }
    if (k == 0 && s->human) {
        const char *lines[] = {"That was the last sound. Your answers are saved.", "",
                               "Thank you very much for taking part!"};
        k = exp_ui_message(&s->ui, "Finished", lines, 3, "Press Enter to finish.");
        if (k == KEY_SIGNAL || k == KEY_EOF) k = 0; /* nothing left to lose */
    }
    return k;
}
