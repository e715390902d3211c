/* `metamers synth` options (and `metamers synth merge`). */
#include <float.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "synth_internal.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: metamers synth --model M --manifest CLIPS.csv --out DIR [options]\n"
        "       metamers synth merge DIR... [--out OUT]\n"
        "       metamers synth judge DIR --model M [--null PATH] [--null-pooled]   (verdicts again,\n"
        "                            e.g. after a new `metamers null`; not remade)\n"
        "  Model metamers: for each clip, stage and seed, a sound whose activations at the\n"
        "  stage match the clip's (Feather et al. 2019, 2023), judged by the published\n"
        "  success criterion. Rerun the same command to resume a killed run.\n"
        "  --stages LIST|all|paper  stages (default all: the cochleagram and every layer on\n"
        "                       the path to the clip's task output; paper: the stages of\n"
        "                       Feather 2023 on that path: cochleagram, relus, avgpools, logits)\n"
        "  --seeds N            metamers per clip and stage, seeds 0..N-1 (default 1)\n"
        "  --preset NAME        feather2023 (published: 8 x 3000 normalized-gradient steps,\n"
        "                       default) or fast (Adam, cosine decay, 5 probed starts,\n"
        "                       5992 steps in all)\n"
        "  --optimizer NAME     normgrad | adam       --steps N    steps per round\n"
        "  --rounds N           rounds                --lr X       first round's step size\n"
        "  --lr-decay X         per-round factor (cosine: final factor per round)\n"
        "  --schedule NAME      rounds | cosine\n"
        "  --maxpool-spread F   first fraction F of the steps backpropagates through\n"
        "                       max-pools as through average pools (fast: 0.5)\n"
        "  --relu-revive F      first fraction F of the steps lets inactive relu units pass\n"
        "                       a tenth of a gradient that would raise them (default 0)\n"
        "  --zero-match W       in the last quarter of the steps, also push the input of\n"
        "                       the relu below the stage toward the clip's signs, so the\n"
        "                       same units are exactly zero (weight W; fast: 0.3)\n"
        "  --starts K           probe K starting noises for the first fraction --probe F of\n"
        "                       the steps each and continue the lowest loss (fast: 5, 0.1:\n"
        "                       4280 + 4 x 428 = 5992 steps in all; 1 = no probing)\n"
        "  --checkpoint-every N steps between checkpoints (default 250, 0 = none)\n"
        "  --envelope MODE      exact (default) or reduced[:X]: optimize through the\n"
        "                       reduced-rate envelope surrogate, oversampling X (default 4),\n"
        "                       ~4x faster; metamers are still judged with the exact model\n"
        "  --threads N          worker threads (default: cores; METAMERS_THREADS)\n"
        "  --shard K/N          only the K-th of N slices of the (clip, stage, seed) list\n"
        "  --clips A,B  --task T  --split S   filter the manifest\n"
        "  --null PATH          null-distribution cache (default: next to the model)\n"
        "  --null-manifest CSV  clips for a missing null (default: --manifest)\n"
        "  --null-pairs N       pairs for a missing null (default %d)\n"
        "  --null-pooled        judge by the pooled null (`metamers null --pooled`:\n"
        "                       pairs of all clips) instead of each clip's task's\n"
        "  --dry-run            list this shard's jobs (index, clip, stage, seed) and exit\n"
        "  --quiet              no progress or notes\n",
        SYNTH_NULL_DEFAULT_PAIRS);
}

static int parse_int(const char *s, int lo, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end || v < lo || v > 1000000000) return -1;
    *out = (int)v;
    return 0;
}

/* A number in [lo, hi] (lo = DBL_TRUE_MIN: positive). */
static int parse_double(const char *s, double lo, double hi, double *out) {
    char *end;
    *out = strtod(s, &end);
    return *s && !*end && *out >= lo && *out <= hi ? 0 : -1;
}

typedef struct {
    const char *preset, *optimizer, *schedule;
    int steps, rounds, every, starts;
    double lr, decay;
    double spread, revive, zero_match, probe; /* < 0: the preset's */
    const char *envelope;
} Custom;

/* The preset, then any custom values over it. */
static int settings_from(const Custom *c, SynthSettings *s, Error *err) {
    if (synth_settings_preset(c->preset, s, err) != 0) return -1;
    bool custom = false;
    if (c->optimizer) {
        if (synth_optimizer_parse(c->optimizer, &s->optimizer, err) != 0) return -1;
        custom = true;
    }
    if (c->schedule) {
        if (!strcmp(c->schedule, "rounds")) s->schedule = SYNTH_SCHED_ROUNDS;
        else if (!strcmp(c->schedule, "cosine")) s->schedule = SYNTH_SCHED_COSINE;
        else return error_set(err, "unknown schedule '%s' (rounds, cosine)", c->schedule);
        custom = true;
    }
    if (c->steps > 0) s->steps = c->steps, custom = true;
    if (c->rounds > 0) s->rounds = c->rounds, custom = true;
    if (c->lr > 0) s->lr = c->lr, custom = true;
    if (c->decay > 0) s->lr_decay = c->decay, custom = true;
    if (c->spread >= 0) s->maxpool_spread = c->spread, custom = true;
    if (c->revive >= 0) s->relu_revive = c->revive, custom = true;
    if (c->zero_match >= 0) s->zero_match = c->zero_match, custom = true;
    if (c->starts > 0) s->starts = c->starts, custom = true;
    if (c->probe >= 0) s->probe = c->probe, custom = true;
    if (s->starts > 1 && !(s->probe > 0))
        return error_set(err, "--starts %d needs --probe F (a fraction of the steps, 0 < F <= 0.5)", s->starts);
    if (c->every >= 0) s->checkpoint_every = c->every; /* does not change the result */
    /* The front end the optimizer sees, not the optimizer: the preset keeps its name. */
    if (c->envelope && strcmp(c->envelope, "exact") != 0) {
        char *end = NULL;
        if (strcmp(c->envelope, "reduced") == 0) s->envelope_oversample = COCHLEAGRAM_REDUCED_OVERSAMPLE;
        else if (strncmp(c->envelope, "reduced:", 8) == 0)
            s->envelope_oversample = strtod(c->envelope + 8, &end);
        if (!(s->envelope_oversample >= 1 && s->envelope_oversample <= 100) || (end && *end))
            return error_set(err, "bad --envelope '%s' (exact, reduced, or reduced:X with 1 <= X <= 100)",
                             c->envelope);
    }
    if (custom) snprintf(s->preset, sizeof s->preset, "custom");
    return 0;
}

int synth_cmd_synth(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "merge") == 0) return synth_merge(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "judge") == 0) return synth_judge(argc - 1, argv + 1);
    SynthOptions o = {.stages = "all", .seeds = 1, .threads = default_thread_count(), .shard_k = 1,
                      .shard_n = 1, .null_pairs = SYNTH_NULL_DEFAULT_PAIRS};
    Custom cu = {.preset = "feather2023", .every = -1, .spread = -1, .revive = -1, .zero_match = -1,
                 .probe = -1};
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"manifest", 1, 0, 'f'}, {"stages", 1, 0, 's'}, {"seeds", 1, 0, 'n'},
        {"preset", 1, 0, 'p'}, {"optimizer", 1, 0, 'O'}, {"steps", 1, 0, 'T'}, {"rounds", 1, 0, 'R'},
        {"lr", 1, 0, 'l'}, {"lr-decay", 1, 0, 'd'}, {"schedule", 1, 0, 'C'},
        {"checkpoint-every", 1, 0, 'k'}, {"out", 1, 0, 'o'}, {"threads", 1, 0, 't'},
        {"shard", 1, 0, 'x'}, {"null", 1, 0, 'N'}, {"null-manifest", 1, 0, 'M'},
        {"null-pairs", 1, 0, 'P'}, {"null-seed", 1, 0, 'E'}, {"null-pooled", 0, 0, 'L'}, {"clips", 1, 0, 'c'},
        {"task", 1, 0, 'a'}, {"split", 1, 0, 'S'}, {"quiet", 0, 0, 'q'}, {"dry-run", 0, 0, 'y'},
        {"envelope", 1, 0, 'V'}, {"maxpool-spread", 1, 0, 'X'}, {"relu-revive", 1, 0, 'U'},
        {"zero-match", 1, 0, 'Z'}, {"starts", 1, 0, 'K'}, {"probe", 1, 0, 'B'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 0, opterr = 0; /* 0: full reset, commands may run twice */
    Error err = {0};
    int c, bad = 0;
    while (!bad && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'f': o.manifest = optarg; break;
        case 's': o.stages = optarg; break;
        case 'n': bad = parse_int(optarg, 1, &o.seeds); break;
        case 'p': cu.preset = optarg; break;
        case 'O': cu.optimizer = optarg; break;
        case 'T': bad = parse_int(optarg, 1, &cu.steps); break;
        case 'R': bad = parse_int(optarg, 1, &cu.rounds); break;
        case 'l': bad = parse_double(optarg, DBL_TRUE_MIN, 1e9, &cu.lr); break;
        case 'd': bad = parse_double(optarg, DBL_TRUE_MIN, 1e9, &cu.decay); break;
        case 'C': cu.schedule = optarg; break;
        case 'V': cu.envelope = optarg; break;
        case 'X': bad = parse_double(optarg, 0, 1, &cu.spread); break;
        case 'U': bad = parse_double(optarg, 0, 1, &cu.revive); break;
        case 'Z': bad = parse_double(optarg, 0, 1e3, &cu.zero_match); break;
        case 'K': bad = parse_int(optarg, 1, &cu.starts) || cu.starts > 64 ? -1 : 0; break;
        case 'B': bad = parse_double(optarg, DBL_TRUE_MIN, 0.5, &cu.probe); break;
        case 'k': bad = parse_int(optarg, 0, &cu.every); break;
        case 'o': o.out = optarg; break;
        case 't': bad = parse_int(optarg, 1, &o.threads); break;
        case 'x': bad = synth_shard_parse(optarg, &o.shard_k, &o.shard_n, &err) ? 2 : 0; break;
        case 'N': o.null_path = optarg; break;
        case 'M': o.null_manifest = optarg; break;
        case 'P': bad = parse_int(optarg, 1, &o.null_pairs); break;
        case 'E': o.null_seed = strtoull(optarg, NULL, 10); break;
        case 'L': o.null_pooled = true; break;
        case 'c': o.clips = optarg; break;
        case 'a': o.task = optarg; break;
        case 'S': o.split = optarg; break;
        case 'q': o.quiet = true; break;
        case 'y': o.dry_run = true; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "metamers synth: unknown option or missing value '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (bad == -1) {
            const char *name = "?";
            for (const struct option *op = opts; op->name; op++)
                if (op->val == c) name = op->name;
            fprintf(stderr, "metamers synth: bad value '%s' for --%s\n", optarg, name);
            return 2;
        }
    }
    if (bad) {
        fprintf(stderr, "metamers synth: %s\n", err.msg);
        return 2;
    }
    const char *missing = !o.model ? "--model" : !o.manifest ? "--manifest" : !o.out && !o.dry_run ? "--out" : NULL;
    if (missing || optind < argc) {
        if (missing) fprintf(stderr, "metamers synth: %s is required (see --help)\n", missing);
        else fprintf(stderr, "metamers synth: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (settings_from(&cu, &o.set, &err) != 0) {
        fprintf(stderr, "metamers synth: %s\n", err.msg);
        return 2;
    }
    if (!o.out) o.out = ".";
    if (synth_run(&o, &err) != 0) {
        fprintf(stderr, "metamers synth: %s\n", err.msg);
        return 1;
    }
    return 0;
}
