/* The design file: JSON (jansson, duplicate keys rejected), validated
 * strictly. Unknown keys are errors, because a misspelt "replay" silently
 * falling back to a default would change an experiment without anyone
 * noticing. Defaults follow the reference protocol of DESIGN.md (Feather et
 * al. 2023). The schema is documented in experiment/README.md. */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct {
    const char *path; /* for messages */
    Error *err;
} Ctx;

static int fail(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Ctx *c, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return error_set(c->err, "%s: %s", c->path, msg);
}

/* Every key of obj must be in allowed (NULL-terminated). */
static int check_keys(Ctx *c, json_t *obj, const char *where, const char *const *allowed) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (int i = 0; allowed[i]; i++) ok |= strcmp(key, allowed[i]) == 0;
        if (!ok) return fail(c, "unknown key \"%s\" in %s (see experiment/README.md)", key, where);
    }
    return 0;
}

static int get_str(Ctx *c, json_t *obj, const char *key, int required, char **out) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) return required ? fail(c, "missing \"%s\"", key) : 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return fail(c, "\"%s\" must be a non-empty string", key);
    *out = xstrdup(json_string_value(v));
    return 0;
}

static int get_int(Ctx *c, json_t *obj, const char *key, int def, int lo, int hi, int *out) {
    json_t *v = json_object_get(obj, key);
    *out = def;
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char range[64];
        snprintf(range, sizeof range, "%d..%d", lo, hi);
        return fail(c, "\"%s\" must be an integer in %s", key, range);
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int get_bool(Ctx *c, json_t *obj, const char *key, int def, int *out) {
    json_t *v = json_object_get(obj, key);
    *out = def;
    if (!v) return 0;
    if (!json_is_boolean(v)) return fail(c, "\"%s\" must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* A string or an array of strings. */
static int get_str_list(Ctx *c, json_t *v, const char *key, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    if (json_is_string(v))
        v = json_pack("[O]", v);
    else
        json_incref(v);
    int rc = 0;
    if (!json_is_array(v) || json_array_size(v) == 0) {
        rc = fail(c, "\"%s\" must be a string or a non-empty array of strings", key);
    } else {
        *out = xcalloc(json_array_size(v), sizeof(char *));
        for (size_t i = 0; i < json_array_size(v) && rc == 0; i++) {
            json_t *s = json_array_get(v, i);
            if (!json_is_string(s) || json_string_length(s) == 0)
                rc = fail(c, "\"%s\" must hold non-empty strings", key);
            else
                (*out)[(*n)++] = xstrdup(json_string_value(s));
        }
    }
    json_decref(v);
    return rc;
}

/* Names and labels go into TSV cells and file names. */
static int safe_token(const char *s, int allow_space) {
    if (!*s || strcmp(s, EXP_NA) == 0) return 0;
    for (; *s; s++)
        if (*s == '\t' || *s == '\n' || *s == '\r' || (*s == ' ' && !allow_space)) return 0;
    return 1;
}

static int parse_conditions(Ctx *c, json_t *arr, Design *d) {
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return fail(c, "\"conditions\" must be a non-empty array");
    d->conds = xcalloc(json_array_size(arr), sizeof(Condition));
    static const char *const keys[] = {"name", "model", "stage", NULL};
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) return fail(c, "each condition must be an object");
        Condition *k = &d->conds[d->n_conds++];
        if (check_keys(c, o, "a condition", keys) || get_str(c, o, "name", 1, &k->name) ||
            get_str(c, o, "model", 0, &k->model) || get_str(c, o, "stage", 0, &k->stage))
            return -1;
        if (!safe_token(k->name, 0) || strcmp(k->name, "catch") == 0)
            return fail(c, "condition name \"%s\" is reserved or has spaces/tabs", k->name);
        if (!k->stage && k->model)
            return fail(c, "condition \"%s\": a model needs a \"stage\"", k->name);
        if (k->stage && !k->model) {
            if (d->n_metamers != 1)
                return fail(c, "condition \"%s\": say which \"model\" (%s metamer sources)",
                            k->name, d->n_metamers ? "several" : "no");
            k->model = xstrdup(d->metamers[0].model);
        }
        for (int j = 0; j + 1 < d->n_conds; j++)
            if (strcmp(d->conds[j].name, k->name) == 0)
                return fail(c, "condition \"%s\" appears twice", k->name);
    }
    return 0;
}

static int parse_metamers(Ctx *c, json_t *arr, Design *d) {
    if (!arr) return 0;
    if (!json_is_array(arr)) return fail(c, "\"metamers\" must be an array");
    d->metamers = xcalloc(json_array_size(arr) + 1, sizeof(MetamerSource));
    static const char *const keys[] = {"model", "csv", "passed_only", NULL};
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) return fail(c, "each metamers entry must be an object");
        MetamerSource *m = &d->metamers[d->n_metamers++];
        if (check_keys(c, o, "a metamers entry", keys) || get_str(c, o, "model", 1, &m->model) ||
            get_str(c, o, "csv", 1, &m->csv) || get_bool(c, o, "passed_only", 0, &m->passed_only))
            return -1;
    }
    return 0;
}

/* Files a design names are read from its folder, never from elsewhere
 * (core's path_check_inside; --allow-outside lifts it). */
static int check_inside(Ctx *c, const char *rel, const char *what) {
    if (path_check_inside(rel, "the design's folder", c->err) == 0) return 0;
    return error_prefix(c->err, "%s: %s", c->path, what);
}

static int check_paths(Ctx *c, const Design *d) {
    for (int i = 0; i < d->n_manifests; i++)
        if (check_inside(c, d->manifests[i], "\"manifests\"")) return -1;
    for (int i = 0; i < d->n_metamers; i++)
        if (check_inside(c, d->metamers[i].csv, "\"metamers\" csv")) return -1;
    return 0;
}

static int load_vocab_file(Ctx *c, const Design *d, const char *rel, char ***out, int *n) {
    if (check_inside(c, rel, "vocabulary file")) return -1;
    char *path = exp_path_join(d->dir, rel), *data = NULL;
    size_t size = 0;
    int rc = read_file(path, &data, &size, c->err);
    free(path);
    if (rc != 0) return -1;
    int cap = 16;
    *out = xcalloc(cap, sizeof(char *));
    *n = 0;
    char *save = NULL;
    for (char *line = strtok_r(data, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        while (isspace((unsigned char)*line)) line++;
        size_t len = strlen(line);
        while (len && isspace((unsigned char)line[len - 1])) line[--len] = 0;
        if (!len || line[0] == '#') continue;
        if (*n == cap) *out = realloc(*out, sizeof(char *) * (cap *= 2));
        if (!*out) abort();
        (*out)[(*n)++] = xstrdup(line);
    }
    free(data);
    return *n ? 0 : fail(c, "vocabulary file %s has no words", rel);
}

static int parse_response(Ctx *c, json_t *o, Design *d) {
    d->mode = RESP_WORD;
    d->cant_tell = 1;
    if (!o) return 0;
    static const char *const keys[] = {"mode", "choices", "vocabulary", "cant_tell", NULL};
    if (!json_is_object(o)) return fail(c, "\"response\" must be an object");
    char *mode = NULL;
    if (check_keys(c, o, "\"response\"", keys) || get_str(c, o, "mode", 0, &mode) ||
        get_bool(c, o, "cant_tell", 1, &d->cant_tell))
        return free(mode), -1;
    if (mode && strcmp(mode, "choice") == 0)
        d->mode = RESP_CHOICE;
    else if (mode && strcmp(mode, "word") != 0)
        return fail(c, "response mode \"%s\" is not \"word\" or \"choice\"", mode), free(mode), -1;
    free(mode);
    json_t *v = json_object_get(o, "vocabulary");
    if (v && json_is_string(v)) {
        if (load_vocab_file(c, d, json_string_value(v), &d->vocab, &d->n_vocab) != 0) return -1;
    } else if (v && get_str_list(c, v, "vocabulary", &d->vocab, &d->n_vocab) != 0) {
        return -1;
    }
    v = json_object_get(o, "choices");
    if (v && get_str_list(c, v, "choices", &d->choices, &d->n_choices) != 0) return -1;
    if (d->n_choices > EXP_MAX_CHOICES)
        return fail(c, "at most 9 choices (number keys 1-9); use \"mode\": \"word\"");
    return 0;
}

static int parse_practice(Ctx *c, json_t *o, Design *d) {
    static const char *const keys[] = {"feedback_trials", "scored_trials", "pass_correct",
                                       "scored_feedback", NULL};
    if (o && !json_is_object(o)) return fail(c, "\"practice\" must be an object");
    json_t *e = json_object();
    if (!o) o = e;
    int rc = check_keys(c, o, "\"practice\"", keys) ||
             get_int(c, o, "feedback_trials", 10, 0, 1000, &d->practice_feedback) ||
             get_int(c, o, "scored_trials", 12, 0, 1000, &d->practice_scored) ||
             get_int(c, o, "pass_correct", d->practice_scored < 5 ? d->practice_scored : 5, 0, 1000,
                     &d->practice_pass) ||
             get_bool(c, o, "scored_feedback", 0, &d->practice_scored_feedback);
    json_decref(e);
    if (rc) return -1;
    if (d->practice_pass > d->practice_scored)
        return fail(c, "practice pass_correct exceeds scored_trials");
    return 0;
}

static int parse_screening(Ctx *c, json_t *v, Design *d) {
    char *test = NULL;
    json_t *o = NULL;
    if (!v) {
        test = xstrdup("woods");
    } else if (json_is_string(v)) {
        test = xstrdup(json_string_value(v));
    } else if (json_is_object(v)) {
        static const char *const keys[] = {"test", "trials", "pass_correct", NULL};
        if (check_keys(c, v, "\"screening\"", keys) || get_str(c, v, "test", 1, &test)) return -1;
        o = v;
    } else {
        return fail(c, "\"screening\" must be \"woods\", \"huggins\", \"none\" or an object");
    }
    int ok = 1;
    if (strcmp(test, "woods") == 0)
        d->screening = SCREEN_WOODS;
    else if (strcmp(test, "huggins") == 0)
        d->screening = SCREEN_HUGGINS;
    else if (strcmp(test, "none") == 0)
        d->screening = SCREEN_NONE;
    else
        ok = 0;
    if (!ok) {
        fail(c, "screening test \"%s\" is not woods, huggins or none", test);
        free(test);
        return -1;
    }
    free(test);
    /* Woods et al. 2017: 6 trials, pass at >= 5; Milne et al. 2021: pass at 6/6. */
    json_t *e = json_object();
    if (!o) o = e;
    int rc = get_int(c, o, "trials", 6, 1, 100, &d->screening_trials) ||
             get_int(c, o, "pass_correct",
                     d->screening == SCREEN_HUGGINS ? d->screening_trials : d->screening_trials - 1,
                     0, 100, &d->screening_pass);
    json_decref(e);
    if (rc) return -1;
    if (d->screening_pass > d->screening_trials)
        return fail(c, "screening pass_correct exceeds trials");
    return 0;
}

static int parse_breaks(Ctx *c, json_t *v, Design *d) {
    if (!v) {
        d->n_breaks = 3; /* Feather 2023: breaks at 1/4, 1/2 and 3/4 */
        d->breaks[0] = 0.25, d->breaks[1] = 0.5, d->breaks[2] = 0.75;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) > EXP_MAX_BREAKS)
        return fail(c, "\"breaks\" must be an array of at most 16 fractions");
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *x = json_array_get(v, i);
        double f = json_is_number(x) ? json_number_value(x) : -1;
        if (!(f > 0 && f < 1) || (i && !(f > d->breaks[i - 1])))
            return fail(c, "\"breaks\" must be increasing fractions between 0 and 1");
        d->breaks[d->n_breaks++] = f;
    }
    return 0;
}

static int parse_top(Ctx *c, json_t *root, Design *d) {
    static const char *const keys[] = {"task",      "manifests",   "split",
                                       "metamers",  "conditions",  "trials_per_condition",
                                       "response",  "practice",    "catch_trials",
                                       "breaks",    "replays",     "feedback",
                                       "screening", "calibration", "pause_ms",
                                       "seed",      "description", "instructions",
                                       NULL};
    if (!json_is_object(root)) return fail(c, "the design must be a JSON object");
    if (check_keys(c, root, "the design", keys) || get_str(c, root, "task", 1, &d->task)) return -1;
    for (const char *s = d->task; *s; s++)
        if (!isalnum((unsigned char)*s))
            return fail(c, "\"task\" must be letters and digits (a BIDS label), not \"%s\"",
                        d->task);
    json_t *m = json_object_get(root, "manifests");
    if (!m) return fail(c, "missing \"manifests\"");
    json_t *seed = json_object_get(root, "seed");
    if (!json_is_integer(seed) || json_integer_value(seed) < 0)
        return fail(c, "\"seed\" must be given as a non-negative integer (it is recorded so "
                       "trial orders can be rebuilt)");
    d->seed = (uint64_t)json_integer_value(seed);
    if (get_str_list(c, m, "manifests", &d->manifests, &d->n_manifests) ||
        get_str(c, root, "split", 0, &d->split) ||
        get_str(c, root, "instructions", 0, &d->instructions) ||
        parse_metamers(c, json_object_get(root, "metamers"), d) ||
        parse_conditions(c, json_object_get(root, "conditions"), d))
        return -1;
    if (!json_object_get(root, "trials_per_condition"))
        return fail(c, "missing \"trials_per_condition\"");
    return get_int(c, root, "trials_per_condition", 0, 1, 100000, &d->trials_per_condition) ||
                   parse_response(c, json_object_get(root, "response"), d) ||
                   parse_practice(c, json_object_get(root, "practice"), d) ||
                   get_int(c, root, "catch_trials", 0, 0, 100000, &d->catch_trials) ||
                   parse_breaks(c, json_object_get(root, "breaks"), d) ||
                   get_int(c, root, "replays", 0, 0, 100, &d->replays) ||
                   get_bool(c, root, "feedback", 0, &d->feedback) ||
                   parse_screening(c, json_object_get(root, "screening"), d) ||
                   get_bool(c, root, "calibration", 1, &d->calibration) ||
                   get_int(c, root, "pause_ms", 500, 0, 60000, &d->pause_ms)
               ? -1
               : 0;
}

static int check_words(Ctx *c, char **w, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        if (!safe_token(w[i], 1) || strcmp(w[i], EXP_CANT_TELL) == 0 || strlen(w[i]) > 60)
            return fail(c, "%s entry \"%s\" is empty, reserved, too long or has tabs", what, w[i]);
        for (int j = 0; j < i; j++)
            if (strcasecmp(w[i], w[j]) == 0) return fail(c, "%s lists \"%s\" twice", what, w[i]);
    }
    return 0;
}

int exp_design_parse(const char *json, size_t n, const char *path, Design *d, Error *err) {
    memset(d, 0, sizeof *d);
    d->path = xstrdup(path);
    d->dir = exp_path_dir(path);
    sha256_hex(json, n, d->sha256);
    Ctx c = {path, err};
    json_error_t je;
    json_t *root = json_loadb(json, n, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        error_set(err, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        exp_design_free(d);
        return -1;
    }
    int rc = parse_top(&c, root, d);
    json_decref(root);
    if (rc == 0) rc = check_paths(&c, d);
    if (rc == 0) rc = check_words(&c, d->vocab, d->n_vocab, "vocabulary");
    if (rc == 0) rc = check_words(&c, d->choices, d->n_choices, "choices");
    if (rc != 0) exp_design_free(d);
    return rc;
}

int exp_design_load(const char *path, Design *d, Error *err) {
    char *data = NULL;
    size_t size = 0;
    memset(d, 0, sizeof *d);
    if (read_file(path, &data, &size, err) != 0) return -1;
    int rc = exp_design_parse(data, size, path, d, err);
    free(data);
    return rc;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

void exp_design_free(Design *d) {
    free(d->path);
    free(d->dir);
    free(d->task);
    free_list(d->manifests, d->n_manifests);
    free(d->split);
    free(d->instructions);
    for (int i = 0; i < d->n_metamers; i++) free(d->metamers[i].model), free(d->metamers[i].csv);
    free(d->metamers);
    for (int i = 0; i < d->n_conds; i++)
        free(d->conds[i].name), free(d->conds[i].model), free(d->conds[i].stage);
    free(d->conds);
    free_list(d->vocab, d->n_vocab);
    free_list(d->choices, d->n_choices);
    memset(d, 0, sizeof *d);
}
