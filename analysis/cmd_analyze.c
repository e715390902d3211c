/* `metamers analyze`: trial logs + participants + model responses (+
 * metamers.csv) -> report directory. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "ana_internal.h"

static const char analyze_usage[] =
    "usage: metamers analyze --trials GLOB --participants participants.tsv\n"
    "                        --model-responses P.csv [--metamers metamers.csv] --out DIR\n"
    "\n"
    "Compares human listeners with a model, per condition, per stage and per clip, and\n"
    "writes CSV tables, SVG figures, report.md and report.html into DIR. Input columns\n"
    "are described in analysis/README.md.\n"
    "\n"
    "  --trials GLOB           BIDS trial logs (quote the glob; repeatable), e.g.\n"
    "                          'subjects/sub-*/beh/*_beh.tsv'; files given after the\n"
    "                          options are trial logs too\n"
    "  --participants FILE     participants.tsv (participant_id, headphone_check, excluded)\n"
    "  --model-responses FILE  per-stimulus model responses (`metamers eval` CSV)\n"
    "  --metamers FILE         metamers.csv: drops trials of failed metamers, orders stages\n"
    "  --out DIR               output directory (created; files written atomically)\n"
    "  --stage-order A,B,...   order of stages in figures (default: metamers.csv order,\n"
    "                          else cochleagram first, then natural order)\n"
    "  --catch-threshold X     exclude participants below this catch accuracy (0.75)\n"
    "  --low-accuracy X        flag kappa where mean human accuracy < X (0.2)\n"
    "  --min-shared N          fewest shared stimuli for a human-human kappa pair (5)\n"
    "  --bootstrap N           bootstrap resamples (2000, at least 1000)\n"
    "  --permutations N        permutations (10000)\n"
    "  --splits N              random split halves for reliabilities (1000)\n"
    "  --seed N                seed of every random draw (1)\n";

void analysis_options_default(AnalysisOptions *opt) {
    *opt = (AnalysisOptions){.catch_threshold = 0.75,
                             .low_accuracy = 0.2,
                             .seed = 1,
                             .bootstrap = 2000,
                             .permutations = 10000,
                             .splits = 1000,
                             .min_shared = 5};
}

static int parse_number(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "metamers analyze: %s '%s': expected a number in [%g, %g]\n", flag, s, lo,
                hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, AnalysisOptions *o) {
    static const struct option opts[] = {
        {"trials", required_argument, 0, 't'},      {"participants", required_argument, 0, 'p'},
        {"model-responses", required_argument, 0, 'm'}, {"metamers", required_argument, 0, 'x'},
        {"out", required_argument, 0, 'o'},         {"stage-order", required_argument, 0, 'S'},
        {"catch-threshold", required_argument, 0, 'c'}, {"low-accuracy", required_argument, 0, 'l'},
        {"min-shared", required_argument, 0, 'n'},  {"bootstrap", required_argument, 0, 'b'},
        {"permutations", required_argument, 0, 'P'}, {"splits", required_argument, 0, 's'},
        {"seed", required_argument, 0, 'r'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    analysis_options_default(o);
    o->trial_globs = xcalloc((size_t)argc + 1, sizeof *o->trial_globs);
    optind = 1;
    opterr = 0;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': o->trial_globs[o->n_trial_globs++] = optarg; break;
        case 'p': o->participants = optarg; break;
        case 'm': o->model_responses = optarg; break;
        case 'x': o->metamers = optarg; break;
        case 'o': o->out = optarg; break;
        case 'S': o->stage_order = optarg; break;
        case 'c':
            if (parse_number("--catch-threshold", optarg, 0, 1, &o->catch_threshold)) return 2;
            break;
        case 'l':
            if (parse_number("--low-accuracy", optarg, 0, 1, &o->low_accuracy)) return 2;
            break;
        case 'n':
            if (parse_number("--min-shared", optarg, 1, 1e6, &v)) return 2;
            o->min_shared = (int)v;
            break;
        case 'b':
            if (parse_number("--bootstrap", optarg, 1000, 1e7, &v)) return 2;
            o->bootstrap = (int)v;
            break;
        case 'P':
            if (parse_number("--permutations", optarg, 100, 1e8, &v)) return 2;
            o->permutations = (int)v;
            break;
        case 's':
            if (parse_number("--splits", optarg, 10, 1e7, &v)) return 2;
            o->splits = (int)v;
            break;
        case 'r':
            if (parse_number("--seed", optarg, 0, 1.8e19, &v)) return 2;
            o->seed = strtoull(optarg, NULL, 10);
            break;
        case 'h': fputs(analyze_usage, stdout); return 1;
        default:
            fprintf(stderr, "metamers analyze: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    /* An unquoted --trials glob arrives shell-expanded: the first file as the
     * option's value, the rest as operands. Take operands as trial files. */
    while (optind < argc) o->trial_globs[o->n_trial_globs++] = argv[optind++];
    const char *missing = !o->n_trial_globs     ? "--trials"
                          : !o->participants    ? "--participants"
                          : !o->model_responses ? "--model-responses"
                          : !o->out             ? "--out"
                                                : NULL;
    if (missing) {
        fprintf(stderr, "metamers analyze: %s is required (see --help)\n", missing);
        return 2;
    }
    return 0;
}

int analysis_run(const AnalysisOptions *opt, Error *err) {
    Study st;
    double t0 = now_seconds();
    if (study_load(&st, opt, err) != 0) {
        study_free(&st);
        return -1;
    }
    double t1 = now_seconds();
    Results r;
    int rc = results_compute(&st, opt, &r, err);
    if (rc == 0) rc = report_write(&st, &r, opt, err);
    if (rc == 0) {
        printf("analyzed %d trial log%s: %d of %d participants included, %d conditions, %d "
               "stimuli (read %.2f s, statistics and report %.2f s)\n",
               st.n_files, st.n_files == 1 ? "" : "s", st.n_included, st.n_subjects,
               st.n_cells, st.n_items, t1 - t0, now_seconds() - t1);
        printf("report: %s/report.html (and report.md, CSV tables, SVG figures)\n", opt->out);
    }
    results_free(&st, &r);
    study_free(&st);
    return rc;
}

int analysis_cmd_analyze(int argc, char **argv) {
    AnalysisOptions opt;
    int rc = parse_args(argc, argv, &opt); /* 1: --help was printed */
    if (rc == 0) {
        Error err = {{0}};
        if (analysis_run(&opt, &err) != 0) {
            fprintf(stderr, "metamers analyze: %s\n", err.msg);
            rc = 1;
        }
    } else if (rc == 1) {
        rc = 0;
    }
    free(opt.trial_globs);
    return rc;
}
