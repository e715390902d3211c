/* One trial as the participant sees it: the sound plays, and the answer is
 * typed (word mode) or chosen by number (choice mode).
 *
 * Word mode follows Feather et al. 2023: while typing, the vocabulary words
 * that contain the typed text are listed (those starting with it first), and
 * only an exact vocabulary word is accepted; Tab fills in the marked
 * suggestion, Up/Down move the mark. "?" is the "can't tell" answer.
 * Keys for hearing the sound again (when the design allows replays): Space
 * (unless a vocabulary word contains a space) and Ctrl-R.
 *
 * Response time runs from the stimulus onset (monotonic clock, output
 * latency included) to the key that submits the answer; replays do not reset
 * it. Keys typed while the sound plays are accepted. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define MAX_SUGGEST 8

int exp_vocab_find(const char *const *vocab, int n, const char *typed) {
    for (int i = 0; i < n; i++)
        if (strcasecmp(vocab[i], typed) == 0) return i;
    return -1;
}

int exp_vocab_matches(const char *const *vocab, int n, const char *typed, int *out, int max) {
    int k = 0;
    size_t len = strlen(typed);
    if (!len) return 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n && k < max; i++) {
            int prefix = strncasecmp(vocab[i], typed, len) == 0;
            if (pass == 0 ? prefix : (!prefix && strcasestr(vocab[i], typed) != NULL)) out[k++] = i;
        }
    }
    return k;
}

typedef struct {
    char typed[64];
    int mark; /* index into the suggestions */
    const char *note;
    int replays;
} TrialState;

static void help_lines(Ui *ui, Screen *s, const TrialState *st) {
    char replay[96] = "";
    int left = ui->d->replays - st->replays;
    if (ui->d->replays > 0)
        snprintf(replay, sizeof replay, "%s plays the sound again (%d left).",
                 ui->d->mode == RESP_WORD && ui->vocab_has_space ? "Ctrl-R" : "Space", left);
    while (s->n < 20) exp_scr_add(s, "%s", "");
    if (ui->d->mode == RESP_WORD) {
        exp_scr_add(s, "  Tab fills in the marked word. Up/Down moves the mark. Enter answers.");
        exp_scr_add(s, "  %s%s", ui->d->cant_tell ? "Type ? if you can't tell.  " : "", replay);
    } else {
        exp_scr_add(s, "  %s", replay);
    }
}

static void draw_word(Ui *ui, const char *header, double progress, const TrialState *st,
                      int playing) {
    Screen s;
    exp_scr_init(&s);
    exp_scr_header(&s, header, playing ? "(playing)" : NULL, progress);
    exp_scr_add(&s, "  What word did you hear? Type it and press Enter.");
    exp_scr_add(&s, "%s", "");
    exp_scr_add(&s, "  Your answer: %s", st->typed);
    s.crow = s.n - 1, s.ccol = 15 + (int)strlen(st->typed);
    exp_scr_add(&s, "%s", "");
    int idx[MAX_SUGGEST];
    int n = exp_vocab_matches(ui->vocab, ui->n_vocab, st->typed, idx, MAX_SUGGEST);
    for (int i = 0; i < n; i++)
        exp_scr_add(&s, "    %s %s", i == st->mark ? ">" : " ", ui->vocab[idx[i]]);
    if (ui->d->cant_tell && strcmp(st->typed, "?") == 0)
        exp_scr_add(&s, "    > ?   (I can't tell)");
    else if (!n && *st->typed)
        exp_scr_add(&s, "        (no word in the list contains \"%s\")", st->typed);
    exp_scr_add(&s, "%s", "");
    exp_scr_add(&s, "  %s", st->note ? st->note : "");
    help_lines(ui, &s, st);
    exp_scr_show(&s);
}

static void draw_choice(Ui *ui, const char *header, double progress, const TrialState *st,
                        int playing) {
    Screen s;
    exp_scr_init(&s);
    exp_scr_header(&s, header, playing ? "(playing)" : NULL, progress);
    exp_scr_add(&s, "  What did you hear? Press its number.");
    exp_scr_add(&s, "%s", "");
    for (int i = 0; i < ui->n_vocab; i++) exp_scr_add(&s, "     %d  %s", i + 1, ui->vocab[i]);
    if (ui->d->cant_tell) exp_scr_add(&s, "     0  I can't tell");
    exp_scr_add(&s, "%s", "");
    exp_scr_add(&s, "  %s", st->note ? st->note : "");
    help_lines(ui, &s, st);
    exp_scr_show(&s);
}

static int replay_key(Ui *ui, int k) {
    return k == KEY_CTRL_R || (k == ' ' && !(ui->d->mode == RESP_WORD && ui->vocab_has_space));
}

/* Word mode key handling; returns 1 when an answer is ready in *answer. */
static int word_key(Ui *ui, TrialState *st, int k, char *answer, size_t cap) {
    int idx[MAX_SUGGEST];
    int n = exp_vocab_matches(ui->vocab, ui->n_vocab, st->typed, idx, MAX_SUGGEST);
    size_t len = strlen(st->typed);
    st->note = NULL;
    if (k == KEY_UP && st->mark > 0)
        st->mark--;
    else if (k == KEY_DOWN && st->mark + 1 < n)
        st->mark++;
    else if (k == KEY_TAB && n)
        snprintf(st->typed, sizeof st->typed, "%s", ui->vocab[idx[st->mark]]), st->mark = 0;
    else if (k == KEY_BACKSPACE && len)
        st->typed[len - 1] = 0, st->mark = 0;
    else if (k == KEY_ENTER) {
        int w = exp_vocab_find(ui->vocab, ui->n_vocab, st->typed);
        if (w >= 0) return snprintf(answer, cap, "%s", ui->vocab[w]), 1;
        if (ui->d->cant_tell && strcmp(st->typed, "?") == 0)
            return snprintf(answer, cap, "%s", EXP_CANT_TELL), 1;
        st->note = len ? "Please choose a word from the list (Tab fills in the marked one)."
                       : "Please type the word you heard.";
    } else if (k >= 32 && k < 127 && len + 1 < sizeof st->typed && len < 40) {
        st->typed[len] = (char)k, st->typed[len + 1] = 0, st->mark = 0;
    }
    return 0;
}

static int choice_key(Ui *ui, TrialState *st, int k, char *answer, size_t cap) {
    st->note = NULL;
    if (k >= '1' && k < '1' + ui->n_vocab)
        return snprintf(answer, cap, "%s", ui->vocab[k - '1']), 1;
    if (ui->d->cant_tell && (k == '0' || k == '?'))
        return snprintf(answer, cap, "%s", EXP_CANT_TELL), 1;
    if (k != KEY_TIMEOUT && k != KEY_RESIZE) st->note = "Please press one of the numbers shown.";
    return 0;
}

/* Onset of the first play: the callback records it asynchronously, so it
 * is read when needed and frozen before a replay can overwrite it. */
static double first_onset(Ui *ui, double *frozen, double requested) {
    if (*frozen > 0) return *frozen;
    double o = exp_audio_out_onset(ui->audio);
    return o > 0 ? o : requested + exp_audio_out_latency(ui->audio);
}

int exp_ui_trial(Ui *ui, const ExpTrial *t, const Sound *snd, const char *header, double progress,
                 UiAnswer *ans, Error *err) {
    (void)t;
    memset(ans, 0, sizeof *ans);
    TrialState st = {{0}, 0, NULL, 0};
    Screen ready; /* a calm, empty screen while the next sound gets ready */
    exp_scr_init(&ready);
    exp_scr_header(&ready, header, NULL, progress);
    exp_scr_add(&ready, "  Listen...");
    exp_scr_show(&ready);
    int k = exp_ui_pause(ui->d->pause_ms);
    if (k != 0) return k;
    exp_term_flush_input();
    double requested = now_seconds(), frozen = 0;
    if (exp_audio_out_play(ui->audio, snd, err) != 0) return -1;
    exp_iso8601_now(ans->onset_iso8601, exp_audio_out_latency(ui->audio));
    for (;;) {
        int playing = exp_audio_out_busy(ui->audio);
        if (ui->d->mode == RESP_WORD)
            draw_word(ui, header, progress, &st, playing);
        else
            draw_choice(ui, header, progress, &st, playing);
        k = exp_term_key(100);
        if (k == KEY_SIGNAL || k == KEY_EOF) return exp_audio_out_stop(ui->audio), k;
        if (replay_key(ui, k)) {
            if (st.replays < ui->d->replays) {
                frozen = first_onset(ui, &frozen, requested);
                if (exp_audio_out_play(ui->audio, snd, err) != 0) return -1;
                st.replays++;
                st.note = NULL;
            } else {
                st.note = ui->d->replays ? "No more replays for this sound."
                                         : "Each sound plays only once.";
            }
            continue;
        }
        int done = ui->d->mode == RESP_WORD
                       ? word_key(ui, &st, k, ans->response, sizeof ans->response)
                       : choice_key(ui, &st, k, ans->response, sizeof ans->response);
        if (!done) continue;
        ans->onset_mono = first_onset(ui, &frozen, requested);
        ans->rt_ms = 1000.0 * (now_seconds() - ans->onset_mono);
        ans->replays = st.replays;
        return 0;
    }
}
