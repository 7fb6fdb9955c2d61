# lorafit — build, test, demo and benchmark. `make help` lists the targets.
# Every target first runs tools/install-deps, so a fresh Debian machine needs nothing by hand.

.PHONY: all deps test check-build asan test-run-only demo bench fuzz valgrind clean help format
.DEFAULT_GOAL := all
.SECONDARY:

BUILD     ?= build
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLAS_DIR  := /usr/lib/$(MULTIARCH)/openblas-openmp
OPT       ?= -O2
SAN       ?=
CFLAGS_ALL = -std=c11 $(OPT) $(SAN) -g -Wall -Wextra -Werror -fopenmp -D_GNU_SOURCE \
             -I. -isystem /usr/include/$(MULTIARCH)/openblas-openmp -MMD -MP $(EXTRA_CFLAGS)
LIBS       = $(SAN) -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -ljansson -lyaml -lcsv -lz -lpcre2-8 -lutf8proc -lm -fopenmp
# Evaluated lazily, after install-deps has put pkg-config and Check in place.
CHECK_LIBS = $$(pkg-config --libs check)

# Every .c under the library's folders, subfolders included (one module per folder).
LIB_SRC   := $(sort $(shell find tensor data trainer -name '*.c'))
LIB_SRC   := $(filter-out trainer/main.c,$(LIB_SRC))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC  := $(sort $(wildcard tests/*.c))
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC  := $(sort $(wildcard tools/*.c))
TOOLS     := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)

all: lorafit

deps:
	@tools/install-deps

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/lib.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/lorafit: $(BUILD)/trainer/main.o $(BUILD)/lib.a
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

fuzz:
	@LORAFIT_EXTRA_PKGS="clang libclang-rt-dev" tools/install-deps
	@tools/fuzz.sh

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
