/* The participant's screens other than the trial itself: messages, volume
 * setting, headphone screening, feedback and breaks. Everything fits an
 * 80x24 terminal, uses plain ASCII (any SSH client and locale), and moves on
 * only when the participant presses a named key, so nothing flashes past. */
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define WIDTH 78

void exp_scr_init(Screen *s) {
    memset(s, 0, sizeof *s);
    s->crow = -1;
}

void exp_scr_add(Screen *s, const char *fmt, ...) {
    if (s->n >= 24) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->lines[s->n++], sizeof s->lines[0], fmt, ap);
    va_end(ap);
}

void exp_scr_wrap(Screen *s, const char *text) {
    const char *p = text;
    while (*p && s->n < 24) {
        int len = (int)strlen(p), cut = len;
        if (len > WIDTH - 2) {
            cut = WIDTH - 2;
            while (cut > 0 && p[cut] != ' ') cut--;
            if (cut == 0) cut = WIDTH - 2;
        }
        exp_scr_add(s, "  %.*s", cut, p);
        p += cut;
        while (*p == ' ') p++;
    }
}

void exp_scr_header(Screen *s, const char *title, const char *right, double progress) {
    int pad = WIDTH - 2 - (int)strlen(title) - (int)strlen(right ? right : "");
    exp_scr_add(s, "  %s%*s%s", title, pad > 1 ? pad : 1, "", right ? right : "");
    if (progress >= 0 && progress <= 1) {
        char bar[61];
        int filled = (int)lround(progress * 60);
        for (int i = 0; i < 60; i++) bar[i] = i < filled ? '#' : '.';
        bar[60] = 0;
        exp_scr_add(s, "  [%s] %3d%%", bar, (int)lround(progress * 100));
    } else {
        exp_scr_add(s, "%s", "");
    }
    exp_scr_add(s, "%s", "");
}

void exp_scr_show(Screen *s) { exp_term_draw(s->lines, s->n, s->crow, s->ccol); }

static int is_exit(int k) { return k == KEY_SIGNAL || k == KEY_EOF; }

int exp_ui_wait_enter(void) {
    for (;;) {
        int k = exp_term_key(1000);
        if (is_exit(k)) return k;
        if (k == KEY_ENTER) return 0;
    }
}

int exp_ui_pause(int ms) {
    double end = now_seconds() + ms / 1000.0;
    for (;;) {
        double left = end - now_seconds();
        if (left <= 0) return 0;
        int k = exp_term_key((int)(left * 1000) + 1); /* keys pressed now are dropped */
        if (is_exit(k)) return k;
    }
}

int exp_ui_message(Ui *ui, const char *title, const char *const *lines, int n, const char *prompt) {
    (void)ui;
    for (;;) {
        Screen s;
        exp_scr_init(&s);
        exp_scr_header(&s, title, NULL, -1);
        for (int i = 0; i < n; i++) {
            if (!*lines[i])
                exp_scr_add(&s, "%s", "");
            else
                exp_scr_wrap(&s, lines[i]);
        }
        exp_scr_add(&s, "%s", "");
        exp_scr_add(&s, "  %s", prompt ? prompt : "Press Enter to continue.");
        exp_scr_show(&s);
        int k = exp_term_key(1000);
        if (is_exit(k)) return k;
        if (k == KEY_ENTER) return 0;
    }
}

int exp_ui_calibration(Ui *ui, const Sound *noise) {
    int played = 0;
    const char *note = "";
    for (;;) {
        Screen s;
        exp_scr_init(&s);
        exp_scr_header(&s, "Setting the volume", NULL, -1);
        exp_scr_wrap(&s, "Please put on your headphones now.");
        exp_scr_add(&s, "%s", "");
        exp_scr_wrap(&s,
                     "Press the Space bar to play a noise, as often as you like. Set the volume "
                     "of the computer or headphones so that the noise is clearly audible and "
                     "comfortable - never loud or unpleasant.");
        exp_scr_add(&s, "%s", "");
        exp_scr_wrap(&s, "When the volume is right, press Enter. Please leave the volume alone "
                         "from then on.");
        exp_scr_add(&s, "%s", "");
        exp_scr_add(&s, "  %s", exp_audio_out_busy(ui->audio) ? "(playing the noise...)" : note);
        exp_scr_show(&s);
        int k = exp_term_key(100);
        if (is_exit(k)) return k;
        if (k == ' ') {
            Error err;
            if (exp_audio_out_play(ui->audio, noise, &err) == 0) played = 1, note = "";
        } else if (k == KEY_ENTER) {
            if (played) return exp_audio_out_stop(ui->audio), 0;
            note = "Please play the noise with the Space bar first.";
        }
    }
}

static int screening_screen(Ui *ui, int i, int n, int playing) {
    Screen s;
    exp_scr_init(&s);
    char right[32];
    snprintf(right, sizeof right, "check %d of %d", i + 1, n);
    exp_scr_header(&s, "Headphone check", right, (double)i / n);
    if (ui->d->screening == SCREEN_WOODS)
        exp_scr_wrap(&s, "You will hear three tones. Which one was the SOFTEST (the quietest)?");
    else
        exp_scr_wrap(&s, "You will hear three noises. In one of them there is a faint tone. "
                         "Which noise had the tone?");
    exp_scr_add(&s, "%s", "");
    exp_scr_add(&s, "  %s", playing ? "Listen..." : "Press 1, 2 or 3.");
    exp_scr_show(&s);
    return 0;
}

static int screening_sound(Ui *ui, uint64_t seed, int i, Sound *snd, int *target, Error *err) {
    int anti;
    exp_screening_plan(seed, i, target, &anti);
    int rate = exp_audio_out_rate(ui->audio);
    if (ui->d->screening == SCREEN_WOODS) {
        exp_sound_woods(snd, rate, ui->level_rms, *target, anti);
        return 0;
    }
    return exp_sound_huggins(snd, rate, ui->level_rms, *target, seed * 31 + (uint64_t)i, err);
}

/* One screening trial: plays once; answers count only after the sound ended. */
static int screening_trial(Ui *ui, uint64_t seed, int i, char *row, size_t cap, int *correct,
                           Error *err) {
    Sound snd;
    int target;
    if (screening_sound(ui, seed, i, &snd, &target, err) != 0) return -1;
    screening_screen(ui, i, ui->d->screening_trials, 1);
    int k = exp_ui_pause(ui->d->pause_ms);
    exp_term_flush_input();
    if (k == 0 && exp_audio_out_play(ui->audio, &snd, err) != 0) k = -1;
    char onset[40];
    exp_iso8601_now(onset, 0);
    double t0 = now_seconds();
    while (k == 0) {
        int busy = exp_audio_out_busy(ui->audio);
        screening_screen(ui, i, ui->d->screening_trials, busy);
        int key = exp_term_key(100);
        if (is_exit(key))
            k = key;
        else if (!busy && key >= '1' && key <= '3') {
            *correct = key - '1' == target;
            snprintf(row, cap, "%d\t%s\t%d\t%d\t%d\t%.1f\t%s\n", i + 1,
                     ui->d->screening == SCREEN_WOODS ? "woods" : "huggins", target + 1, key - '0',
                     *correct, 1000 * (now_seconds() - t0), onset);
            break;
        }
    }
    exp_audio_out_stop(ui->audio);
    exp_sound_free(&snd);
    return k;
}

int exp_ui_screening(Ui *ui, uint64_t seed, int *n_correct, const char *log_path, Error *err) {
    int n = ui->d->screening_trials, k = 0;
    size_t cap = 128 + (size_t)n * 160, len = 0;
    char *tsv = xmalloc(cap);
    len += (size_t)snprintf(tsv, cap,
                            "trial\ttest\ttarget\tresponse\tcorrect\trt_ms\tonset_iso8601\n");
    *n_correct = 0;
    for (int i = 0; i < n && k == 0; i++) {
        int correct = 0;
        k = screening_trial(ui, seed, i, tsv + len, cap - len, &correct, err);
        len += strlen(tsv + len);
        *n_correct += correct;
    }
    /* Written once complete: an interrupted check is simply run again. */
    if (k == 0 && atomic_write_file(log_path, tsv, len, 0600, err) != 0) k = -1;
    free(tsv);
    return k;
}

int exp_ui_feedback(Ui *ui, const ExpTrial *t, const char *response, int correct) {
    (void)ui;
    Screen s;
    exp_scr_init(&s);
    exp_scr_header(&s, "Practice", NULL, -1);
    exp_scr_add(&s, "%s", "");
    if (correct) {
        exp_scr_add(&s, "  Correct!  It was \"%s\".", t->true_label);
    } else {
        exp_scr_add(&s, "  It was \"%s\".", t->true_label);
        exp_scr_add(&s, "%s", "");
        exp_scr_add(&s, "  Your answer: %s",
                    strcmp(response, EXP_CANT_TELL) == 0 ? "can't tell" : response);
    }
    exp_scr_add(&s, "%s", "");
    exp_scr_add(&s, "%s", "");
    exp_scr_add(&s, "  Press Enter for the next sound.");
    exp_scr_show(&s);
    return exp_ui_wait_enter();
}

int exp_ui_break(Ui *ui, int done, int total) {
    (void)ui;
    char line[160];
    snprintf(line, sizeof line,
             "You have finished %d of %d sounds. Take a short break: "
             "stretch, rest your ears, have some water.",
             done, total);
    const char *lines[] = {line, "", "Your answers so far are saved.", "",
                           "Keep your headphones and the volume as they are."};
    return exp_ui_message(ui, "Break", lines, 5, "Press Enter when you are ready to go on.");
}
