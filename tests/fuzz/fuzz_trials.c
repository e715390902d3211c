/* The experiment's TSV files on the resume path: a participant's trial
 * list (exp_trials_parse) and a trial log checked against a list before a
 * session continues it (exp_triallog_scan, the pure part of
 * exp_triallog_open). */
#include <stdlib.h>
#include <string.h>

#include "../../experiment/internal.h"
#include "fuzz.h"

#define LIST_NAME "sub-01_trials.tsv"

/* The list the logs are checked against: the seed corpus's logs belong to
 * it (tests/fuzz/corpus/trials/). */
static const TrialList *fixed_list(void) {
    static TrialList l;
    if (l.n == 0) {
        exp_trials_add(&l, 0, "practice", "natural", "c01", "clips/c01.wav", NULL, NULL, "apple",
                       -1);
        exp_trials_add(&l, 1, "main", "relu1", "c02", "met/relu1/c02_s0.wav", "relu1", "m",
                       "banana", 0);
        exp_trials_add(&l, 1, "main", "natural", "c03", "clips/c03.wav", NULL, NULL, "cherry",
                       -1);
    }
    return &l;
}

static void parse_list(const uint8_t *data, size_t size) {
    char *text = fuzz_cstring(data, size);
    TrialList l;
    Error err = {{0}};
    if (exp_trials_parse(text, LIST_NAME, &l, &err) != 0) {
        fuzz_check_error(&err, LIST_NAME);
        free(text);
        return;
    }
    free(text);
    /* What build would write for this list reads back as the same list. */
    char *tsv = exp_trials_to_tsv(&l);
    TrialList back;
    fuzz_assert(exp_trials_parse(tsv, LIST_NAME, &back, &err) == 0, "a list reads back");
    fuzz_assert(back.n == l.n, "same rows after a round trip");
    exp_trials_free(&back);
    free(tsv);
    exp_trials_free(&l);
}

static void scan_log(const uint8_t *data, size_t size) {
    const TrialList *list = fixed_list();
    TrialLog log = {.fd = -1};
    size_t complete = 0;
    Error err = {{0}};
    if (exp_triallog_scan((const char *)data, size, list, &log, &complete, &err) != 0)
        fuzz_check_error(&err, NULL); /* exp_triallog_open prefixes the path */
    else
        fuzz_assert(log.n_done <= list->n && complete <= size, "scan stays in bounds");
    free(log.correct);
}

FUZZ_TARGET(trials) {
    parse_list(data, size);
    scan_log(data, size);
    return 0;
}
