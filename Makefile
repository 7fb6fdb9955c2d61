# lorafit — build, test, demo and benchmark. `make help` lists the targets.
# ./configure (tools/install-deps) installs the Debian packages these targets need; make
# itself never installs anything, except the extra tools of `make fuzz` and `make valgrind`.

.PHONY: all deps test check-build asan test-run-only demo bench fuzz fuzz-build fuzzers valgrind clean help format \
        install uninstall deb
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
# The version, in one place: debian/changelog's newest entry ("lorafit (0.1.0) ...").
VERSION   := $(shell awk -F'[()]' 'NR == 1 { print $$2 }' debian/changelog)
CFLAGS_ALL = -std=c11 $(OPT) $(SAN) -g -Wall -Wextra -Werror -fopenmp -D_GNU_SOURCE \
             -DLORAFIT_VERSION='"$(VERSION)"' \
             -I. -isystem /usr/include/$(MULTIARCH)/openblas-openmp $(MPI_CFLAGS) -MMD -MP $(EXTRA_CFLAGS)
# The binary finds the OpenMP build of OpenBLAS by its folder; the Debian package leaves the
# choice to Debian's libopenblas.so.0 alternative instead (RPATH= in debian/rules).
RPATH     ?= -Wl,-rpath,$(BLAS_DIR)
LIBS       = $(SAN) $(LDFLAGS) -L$(BLAS_DIR) $(RPATH) -lopenblas -ldnnl -ljansson -lyaml -lcsv -lz -lpcre2-8 -lutf8proc $(MPI_LIBS) -lm -fopenmp
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
# (DEPS_CHECK=true in debian/rules: dpkg-buildpackage has checked the Build-Depends.)
DEPS_CHECK ?= tools/install-deps --check
$(BUILD)/.deps-ok: tools/install-deps
	@mkdir -p $(dir $@)
	@$(DEPS_CHECK)
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

# -Wno-pass-failed: at -O1 clang may decline an `omp simd` loop (finite.c), a hint, not an error.
fuzz-build:
	@LORAFIT_EXTRA_PKGS="clang libclang-rt-dev libomp-dev" tools/install-deps
	$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang OPT=-O1 SAN="$(FUZZ_SAN)" \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link -Wno-pass-failed" fuzzers

fuzz: fuzz-build
	@FUZZ_BIN=$(FUZZ_BUILD)/fuzz tools/fuzz.sh

valgrind: $(BUILD)/lorafit
	@LORAFIT_EXTRA_PKGS=valgrind tools/install-deps
	@tools/valgrind.sh $(BUILD)

# make install / uninstall, with the GNU directory variables (PREFIX sets prefix).
PREFIX      ?= /usr/local
prefix      ?= $(PREFIX)
exec_prefix ?= $(prefix)
bindir      ?= $(exec_prefix)/bin
datarootdir ?= $(prefix)/share
datadir     ?= $(datarootdir)
mandir      ?= $(datarootdir)/man
man1dir     ?= $(mandir)/man1
bashcompdir ?= $(datadir)/bash-completion/completions
INSTALL     ?= install
# Everything make install writes, and nothing else: make uninstall removes exactly these.
CONFIGS          := $(sort $(wildcard configs/*.yaml))
INSTALLED_FILES   = $(bindir)/lorafit $(man1dir)/lorafit.1 $(bashcompdir)/lorafit \
                    $(CONFIGS:configs/%=$(datadir)/lorafit/configs/%)

install: $(BUILD)/lorafit
	$(INSTALL) -d $(DESTDIR)$(bindir) $(DESTDIR)$(man1dir) $(DESTDIR)$(bashcompdir) \
	  $(DESTDIR)$(datadir)/lorafit/configs
	$(INSTALL) -m 755 $(BUILD)/lorafit $(DESTDIR)$(bindir)/lorafit
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@DATADIR@|$(datadir)|g' trainer/cli/lorafit.1 \
	  > $(DESTDIR)$(man1dir)/lorafit.1
	chmod 644 $(DESTDIR)$(man1dir)/lorafit.1
	$(INSTALL) -m 644 trainer/cli/lorafit.bash $(DESTDIR)$(bashcompdir)/lorafit
	$(INSTALL) -m 644 $(CONFIGS) $(DESTDIR)$(datadir)/lorafit/configs

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED_FILES))
	-rmdir $(DESTDIR)$(datadir)/lorafit/configs $(DESTDIR)$(datadir)/lorafit 2>/dev/null

# The Debian package (../lorafit_VERSION_ARCH.deb), with its packaging tools installed first
# like make fuzz's, then lintian's verdict on it.
deb:
	@LORAFIT_EXTRA_PKGS="build-essential dpkg-dev debhelper fakeroot lintian" tools/install-deps
	dpkg-buildpackage -us -uc -b
	lintian --fail-on error ../lorafit_$(VERSION)_$$(dpkg-architecture -qDEB_HOST_ARCH).deb

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
	@echo "make install  install (PREFIX=/usr/local, DESTDIR); make uninstall removes it"
	@echo "make deb      build the Debian package ../lorafit_VERSION_ARCH.deb and lintian it"

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
