# metamers: model-metamer synthesis and listening-experiment suite.
#   make            build ./metamers (installs missing Debian packages first)
#   make check      build and run all tests
#   make check-asan tests under AddressSanitizer + UBSan
#   make check-valgrind  the engine's tests under valgrind memcheck
#   make bench      benchmarks
#   make fuzz       libFuzzer harnesses, FUZZ_TIME seconds each (tests/fuzz/README.md)
#   make demo       the whole loop on the bundled default model
#   make model      rebuild the train stimulus set and retrain the default model
# CC=clang works too.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O3
PKGS    := sndfile soxr fftw3f openblas portaudio-2.0 jansson
CFLAGS  ?= $(OPT) -g
# -fno-math-errno: nothing reads errno after a math call, and with errno
# semantics sqrtf is a library call that blocks vectorization (AdamW's update).
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -fopenmp-simd -fno-math-errno \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(EXTRA_CFLAGS)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcsv -lm -lpthread
LDFLAGS += -pthread $(EXTRA_LDFLAGS)

MODULES := core model stimuli synth experiment subjects analysis
LIB_SRC := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
# The fuzz harnesses also build into run_tests, which replays the inputs that
# once crashed them (tests/fuzz/regress/).
TEST_SRC := $(wildcard tests/*.c) $(wildcard tests/fuzz/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/%.o)
DEPFILES := $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) $(BUILD)/metamers.d

.PHONY: all deps build check check-asan check-valgrind bench demo model clean fuzz fuzz-build

all: deps
	@$(MAKE) --no-print-directory build

deps:
	@scripts/deps

build: metamers $(BUILD)/run_tests $(BUILD)/run_bench

# Renamed into place: cp onto a ./metamers that is running (make model, a
# demo) fails with "Text file busy".
metamers: $(BUILD)/metamers
	cp $< $@.tmp-cp && mv -f $@.tmp-cp $@

$(BUILD)/metamers: $(BUILD)/metamers.o $(BUILD)/libmetamers.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libmetamers.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/run_tests: $(TEST_OBJ) $(BUILD)/libmetamers.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/run_bench: $(BENCH_OBJ) $(BUILD)/libmetamers.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# The reference outputs live in ../shared/golden. A clone made elsewhere
# (git clone . /tmp/x) finds them beside the local repository it was cloned
# from; METAMERS_GOLDEN overrides both.
ifndef METAMERS_GOLDEN
ifeq ($(wildcard ../shared/golden),)
ORIGIN_GOLDEN := $(wildcard $(shell git config --get remote.origin.url 2>/dev/null)/../shared/golden)
ifneq ($(ORIGIN_GOLDEN),)
export METAMERS_GOLDEN := $(abspath $(ORIGIN_GOLDEN))
endif
endif
endif

check: deps
	@$(MAKE) --no-print-directory build
	@if [ -n "$$METAMERS_GOLDEN" ]; then echo "reference outputs: $$METAMERS_GOLDEN"; fi
	@./$(BUILD)/run_tests $(TESTS)

# (run_tests runs scripts/demo with the program built next to it.)
check-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" build-asan/run_tests build-asan/metamers
	@ASAN_OPTIONS=detect_leaks=1 ./build-asan/run_tests $(TESTS)

# Memcheck on the engine's tests (the whole suite runs external programs and
# takes long under valgrind). "Possibly lost" blocks are OpenBLAS's thread stacks.
VG_TESTS ?= layers network arch safetensors core_ pool atomic make_dirs alloc cli_
check-valgrind: deps
	@$(MAKE) --no-print-directory build
	@METAMERS_VALGRIND=1 valgrind --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite -q \
	    ./$(BUILD)/run_tests $(VG_TESTS)

bench: deps
	@$(MAKE) --no-print-directory build
	@./$(BUILD)/run_bench $(BENCHES)

# Rebuilds the train stimulus set and retrains the bundled default model.
MODEL_SET ?= data/train-set
model: deps
	@$(MAKE) --no-print-directory build
	mkdir -p models
	./metamers stimuli build --recipe train --out $(MODEL_SET)
	./metamers train --manifest $(MODEL_SET)/manifest.csv --arch default-t2 --epochs 11 --lr 3e-4 --shift 5 --fresh 0.25 \
	    --freq-shift 1.5 --time-masks 2:8 --freq-masks 1:5 --seed 1 \
	    --recipe train --cache $(MODEL_SET)/cache --log models/train_log.csv \
	    --out models/default.safetensors
	./metamers eval --model models/default.safetensors --manifest $(MODEL_SET)/manifest.csv \
	    --split test --out models/default-test-predictions.csv --record
	rm -f models/default.safetensors.ckpt

demo: deps
	@$(MAKE) --no-print-directory build
	@scripts/demo

# Fuzzing: clang + libFuzzer + ASan/UBSan into $(FUZZ_BUILD)/; each harness
# runs FUZZ_TIME seconds on its seed corpus (tests/fuzz/corpus/<parser>/)
# and the crash regressions; findings land in $(FUZZ_BUILD)/work/<parser>/.
FUZZ_TIME ?= 600
FUZZ_TIMEOUT ?= 10
FUZZ_BUILD ?= build-fuzz
FUZZERS ?= $(filter-out common,$(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# (instrumented loops cannot honour `omp simd`; that is not an error here)
FUZZ_WARN := -Wno-pass-failed

fuzz: fuzz-build
	@FUZZ_TIMEOUT=$(FUZZ_TIMEOUT) tests/fuzz/run $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZERS)

fuzz-build: deps
	@$(MAKE) --no-print-directory CC=clang BUILD=$(FUZZ_BUILD) OPT=-O1 \
	    EXTRA_CFLAGS="$(FUZZ_SAN) $(FUZZ_WARN) -fsanitize=fuzzer-no-link" EXTRA_LDFLAGS="$(FUZZ_SAN)" \
	    $(FUZZERS:%=$(FUZZ_BUILD)/fuzz/fuzz_%)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.c tests/fuzz/fuzz.h $(BUILD)/libmetamers.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DFUZZ_LIBFUZZER -fsanitize=fuzzer $(LDFLAGS) -o $@ $< tests/fuzz/fuzz_common.c \
	    $(BUILD)/libmetamers.a $(LDLIBS)

clean:
	rm -rf build build-asan build-fuzz metamers

-include $(DEPFILES)
