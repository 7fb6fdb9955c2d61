# lorafit — build, test, demo and benchmark. `make help` lists the targets.
# ./configure (tools/install-deps) installs the Debian packages these targets need; make
# itself never installs anything, except the extra tools of `make fuzz` and `make valgrind`.

.PHONY: all deps test check-build asan test-run-only demo bench fuzz fuzz-build fuzzers valgrind clean help format
.DEFAULT_GOAL := all
# Parallel by default; sub-makes (asan, fuzz) share the top-level jobserver.
ifeq ($(MAKELEVEL),0)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
endif
.SECONDARY:

BUILD     ?= build
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLAS_DIR  := /usr/lib/$(MULTIARCH)/openblas-openmp
OPT       ?= -O2
SAN       ?=
CFLAGS_ALL = -std=c11 $(OPT) $(SAN) -g -Wall -Wextra -Werror -fopenmp -D_GNU_SOURCE \
             -I. -isystem /usr/include/$(MULTIARCH)/openblas-openmp $(MPI_CFLAGS) -MMD -MP $(EXTRA_CFLAGS)
LIBS       = $(SAN) -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -ldnnl -ljansson -lyaml -lcsv -lz -lpcre2-8 -lutf8proc $(MPI_LIBS) -lm -fopenmp
# OpenMPI (trainer/train/ranks.c), as its pkg-config file says; empty until it is installed
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null)
# tensor/'s element-wise loops vectorise at -O3 (no -ffast-math, no -march, -std=c11 keeps
# FMA contraction off: the same IEEE operations lane by lane, the same bits as -O2). A
# command-line OPT (make asan) wins over this.
$(BUILD)/tensor/%.o: OPT = -O3
CHECK_LIBS = $$(pkg-config --libs check)

# Every .c under the library's folders, subfolders included (one module per folder).
LIB_SRC   := $(sort $(shell find tensor data trainer -name '*.c'))
LIB_SRC   := $(filter-out trainer/cli/main.c,$(LIB_SRC))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC  := $(sort $(wildcard tests/*.c))
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC  := $(sort $(wildcard tools/*.c))
TOOLS     := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)

all: lorafit

deps:
	@tools/install-deps

# Every object waits for one check that the Debian packages are there (it installs nothing:
# ./configure does); the stamp makes it once per build directory.
$(BUILD)/.deps-ok: tools/install-deps
	@mkdir -p $(dir $@)
	@tools/install-deps --check
	@touch $@

$(BUILD)/%.o: %.c | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/lib.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/lorafit: $(BUILD)/trainer/cli/main.o $(BUILD)/lib.a
	$(CC) -o $@ $^ $(LIBS)

lorafit: $(BUILD)/lorafit
	@cp $< $@

$(BUILD)/tools/%: $(BUILD)/tools/%.o $(BUILD)/lib.a
	$(CC) -o $@ $^ $(LIBS)

# The test runner collects every `Suite *name_suite(void)` defined in tests/*.c.
$(BUILD)/tests/suites.h: $(TEST_SRC)
	@mkdir -p $(dir $@)
	@grep -ho '^Suite \*[a-z0-9_]*_suite(void)' $(TEST_SRC) | sed 's/^Suite \*\(.*\)(void)/SUITE(\1)/' > $@.tmp
	@mv $@.tmp $@

$(BUILD)/tests/main.o: $(BUILD)/tests/suites.h
$(BUILD)/tests/main.o: EXTRA_CFLAGS += -I$(BUILD)/tests

$(BUILD)/tests/run_tests: $(TEST_OBJ) $(BUILD)/lib.a
	$(CC) -o $@ $^ $(LIBS) $(CHECK_LIBS)

check-build: $(BUILD)/tests/run_tests $(BUILD)/lorafit $(TOOLS)

# Tests find the binary and tools of the same build through these variables.
TEST_ENV = LORAFIT_BIN=$(abspath $(BUILD)/lorafit) LORAFIT_TOOLS=$(abspath $(BUILD)/tools) \
           LORAFIT_ROOT=$(CURDIR)

test: check-build
	@tools/check-layout
	$(TEST_ENV) $(BUILD)/tests/run_tests

ASAN_BUILD ?= build/asan
asan:
	$(MAKE) BUILD=$(ASAN_BUILD) OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  check-build
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 LORAFIT_SANITIZED=1 \
	  $(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) test-run-only

test-run-only:
	$(TEST_ENV) $(BUILD)/tests/run_tests

demo: lorafit $(TOOLS)
	@tools/demo.sh $(BUILD)

bench: lorafit $(TOOLS)
	@tools/bench.sh $(BUILD)

# libFuzzer harnesses: the library's own sources and flags, compiled by clang with coverage
# instrumentation and ASan + UBSan into $(FUZZ_BUILD); tools/fuzz.sh runs them.
FUZZ_BUILD ?= build/fuzz
FUZZ_SAN    = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZERS     = $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%) $(BUILD)/fuzz/gen_seeds

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/lib.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer $< $(BUILD)/lib.a $(LIBS) -o $@

$(BUILD)/fuzz/gen_seeds: tests/fuzz/gen_seeds.c $(BUILD)/lib.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(BUILD)/lib.a $(LIBS) -o $@

fuzzers: $(FUZZERS)

fuzz-build:
	@LORAFIT_EXTRA_PKGS="clang libclang-rt-dev libomp-dev" tools/install-deps
	$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang OPT=-O1 SAN="$(FUZZ_SAN)" \
	  EXTRA_CFLAGS=-fsanitize=fuzzer-no-link fuzzers

fuzz: fuzz-build
	@FUZZ_BIN=$(FUZZ_BUILD)/fuzz tools/fuzz.sh

valgrind: $(BUILD)/lorafit
	@LORAFIT_EXTRA_PKGS=valgrind tools/install-deps
	@tools/valgrind.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build lorafit runs/demo

help:
	@echo "make          build ./lorafit"
	@echo "make test     build and run every test"
	@echo "make asan     the tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make demo     generate a small model and dataset, fine-tune it, show the result"
	@echo "make bench    print kernel, load and data-streaming figures"
	@echo "make fuzz     run each fuzz harness for FUZZ_SECONDS (default 60)"
	@echo "make valgrind a small training run and resume under valgrind memcheck"

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
