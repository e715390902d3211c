/* metamers: one executable, one subcommand per step of the suite. */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "analysis/analysis.h"
#include "experiment/experiment.h"
#include "model/model.h"
#include "stimuli/stimuli.h"
#include "subjects/subjects.h"
#include "synth/synth.h"

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} Command;

static int cmd_help(int argc, char **argv);

static const Command commands[] = {
    {"help", "list subcommands, or `help CMD` for one", cmd_help},
    {"stimuli", "build or import stimulus sets (manifest + clips)", stimuli_cmd},
    {"represent", "a clip's cochleagram and network activations (and input gradient)",
     model_cmd_represent},
    {"stages", "list a model's stages and their shapes", model_cmd_stages},
    {"classify", "top labels per task for audio files", model_cmd_classify},
    {"train", "train a network on a stimulus set (checkpoints, resume)", model_cmd_train},
    {"eval", "accuracy per task and SNR, per-clip predictions", model_cmd_eval},
    {"synth", "model metamers of clips at chosen stages (`synth merge` joins shards)",
     synth_cmd_synth},
    {"null", "null distribution of activation similarity between natural clips", synth_cmd_null},
    {"show", "figure of natural and metamer cochleagrams per stage", synth_cmd_show},
    {"experiment", "listening experiment: build trial lists, run a session, list devices",
     experiment_cmd},
    {"subjects", "participant registry: add, list, exclude", subjects_cmd},
    {"analyze", "human vs model error patterns: tables, figures, report", analysis_cmd_analyze},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static const Command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static int cmd_help(int argc, char **argv) {
    if (argc > 1) {
        const Command *c = find_command(argv[1]);
        if (!c) {
            fprintf(stderr, "metamers: unknown command '%s' (see `metamers help`)\n", argv[1]);
            return 2;
        }
        char *args[] = {(char *)c->name, "--help", NULL};
        return c == &commands[0] ? 0 : c->run(2, args);
    }
    printf("usage: metamers COMMAND [options]   (metamers COMMAND --help for details)\n\n");
    for (int i = 0; i < N_COMMANDS; i++) printf("  %-12s %s\n", commands[i].name, commands[i].summary);
    printf("\nPaths inside manifests, designs and metamer tables must stay in their file's\n"
           "folder; --allow-outside (anywhere on the line) permits absolute and ../ paths.\n");
    return 0;
}

/* `--allow-outside` may stand anywhere on the line (it is a policy for the
 * whole run, not an option of one command): removes it and records it. */
static int take_allow_outside(int argc, char **argv) {
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--allow-outside") == 0)
            paths_allow_outside(true);
        else
            argv[n++] = argv[i];
    }
    argv[n] = NULL;
    return n;
}

int main(int argc, char **argv) {
    blas_select_best_core(argv);
    argc = take_allow_outside(argc, argv);
    if (argc < 2) return cmd_help(1, argv), 2;
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) return cmd_help(1, argv);
    const Command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "metamers: unknown command '%s' (see `metamers help`)\n", argv[1]);
        return 2;
    }
    return c->run(argc - 1, argv + 1);
}
