/* Fuzz harnesses: one file per parser (tests/fuzz/fuzz_<parser>.c), each
 * feeding arbitrary bytes through the parser's public entry point.
 *
 * The same file builds two ways:
 * - `make fuzz` compiles it with -DFUZZ_LIBFUZZER into a libFuzzer binary
 *   (LLVMFuzzerTestOneInput);
 * - the normal build links it into run_tests as fuzz_<parser>(), so the
 *   regression test (tests/test_fuzz_regress.c) replays every input that
 *   once crashed (tests/fuzz/regress/<parser>/) through the same code.
 *
 * A harness returns 0 when the parser accepted or cleanly refused the input,
 * and abort()s (a finding for the fuzzer, a failed test for run_tests) when
 * a refusal broke the error contract: a one-line, non-empty message that
 * names the file. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "../../core/core.h"

#ifdef FUZZ_LIBFUZZER
#define FUZZ_TARGET(name) int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
#else
#define FUZZ_TARGET(name) int fuzz_##name(const uint8_t *data, size_t size)
#endif

/* Every harness, for the regression test. */
int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_arch(const uint8_t *data, size_t size);
int fuzz_manifest(const uint8_t *data, size_t size);
int fuzz_design(const uint8_t *data, size_t size);
int fuzz_trials(const uint8_t *data, size_t size);
int fuzz_audio(const uint8_t *data, size_t size);

/* Folder for files the parsers read by path: the regression test sets its
 * test folder; otherwise a fresh /dev/shm (or $TMPDIR) folder per process,
 * removed at exit. */
void fuzz_set_workdir(const char *dir);
const char *fuzz_workdir(void);
/* Writes data to <workdir>/<name> and returns that path (static buffer). */
const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size);
/* The bytes as a NUL-terminated string (malloc'd). */
char *fuzz_cstring(const uint8_t *data, size_t size);
/* Aborts with a note unless err holds one non-empty line containing
 * must_name (if non-NULL): the contract every refusal must keep. */
void fuzz_check_error(const Error *err, const char *must_name);
/* Aborts with a note when cond is false (a property the harness checks). */
void fuzz_assert(int cond, const char *what);

#endif
