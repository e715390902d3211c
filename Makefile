# metamers: model-metamer synthesis and listening-experiment suite.
#   make            build ./metamers (installs missing Debian packages first)
#   make check      build and run all tests
#   make check-asan tests under AddressSanitizer + UBSan
#   make check-valgrind  the engine's tests under valgrind memcheck
#   make bench      benchmarks
#   make demo       the whole loop on the bundled default model
#   make model      rebuild the train stimulus set and retrain the default model
# CC=clang works too.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O3
PKGS    := sndfile soxr fftw3f openblas portaudio-2.0 jansson
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -fopenmp-simd \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(EXTRA_CFLAGS)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcsv -lm -lpthread
LDFLAGS += -pthread $(EXTRA_LDFLAGS)

MODULES := core model stimuli synth experiment subjects analysis
LIB_SRC := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/%.o)
DEPFILES := $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) $(BUILD)/metamers.d

.PHONY: all deps build check check-asan check-valgrind bench demo model clean

all: deps
	@$(MAKE) --no-print-directory build

deps:
	@scripts/deps

build: metamers $(BUILD)/run_tests $(BUILD)/run_bench

metamers: $(BUILD)/metamers
	cp $< $@

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

check: deps
	@$(MAKE) --no-print-directory build
	@./$(BUILD)/run_tests $(TESTS)

check-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" build-asan/run_tests
	@ASAN_OPTIONS=detect_leaks=1 ./build-asan/run_tests $(TESTS)

# Memcheck on the engine's tests (the whole suite runs external programs and
# takes long under valgrind). "Possibly lost" blocks are OpenBLAS's thread stacks.
VG_TESTS ?= layers network arch safetensors core_ pool atomic make_dirs alloc cli_
check-valgrind: deps
	@$(MAKE) --no-print-directory build
	@valgrind --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite -q \
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
	./metamers train --manifest $(MODEL_SET)/manifest.csv --arch default --epochs 15 --seed 1 \
	    --recipe train --cache $(MODEL_SET)/cache --log models/train_log.csv \
	    --out models/default.safetensors
	./metamers eval --model models/default.safetensors --manifest $(MODEL_SET)/manifest.csv \
	    --split test --out models/default-test-predictions.csv --record
	rm -f models/default.safetensors.ckpt

demo: deps
	@$(MAKE) --no-print-directory build
	@scripts/demo

clean:
	rm -rf build build-asan metamers

-include $(DEPFILES)
