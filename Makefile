# loupe - see README.md. `make` builds bin/loupe and build/libloupe.{a,so};
# `make test` runs the Criterion suites and the end-to-end checks.

BUILD    ?= build
BIN      ?= bin
CC       ?= gcc
SANITIZE ?= 0
PKGS     := yaml-0.1 sqlite3 zlib openblas libpng

# pkg-config runs when a rule first needs it, not when make reads this file: on a
# fresh machine `make deps` (the first prerequisite of all and test) installs it and
# the libraries first. Each is evaluated once, then cached.
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $$(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)

OPT      ?= -O2 -march=native

# MPI (experiments/dist/, docs/scaling.md): MPI=1 builds with Open MPI, MPI=0 without;
# by default it is on when mpicc is found (`make deps` installs Open MPI). Decided once,
# when first needed (after `make deps`), like the flags above.
MPI      ?= auto
MPI_ON    = $(eval MPI_ON := $$(if $$(filter 1,$$(MPI)),1,$$(if $$(filter auto,$$(MPI)),$$(if $$(shell command -v mpicc 2>/dev/null),1,0),0)))$(MPI_ON)
MPI_FLAGS = $(eval MPI_FLAGS := $$(if $$(filter 1,$$(MPI_ON)),-DLOUPE_MPI $$(shell pkg-config --cflags ompi-c)))$(MPI_FLAGS)
MPI_LIBS  = $(eval MPI_LIBS := $$(if $$(filter 1,$$(MPI_ON)),$$(shell pkg-config --libs ompi-c)))$(MPI_LIBS)
# experiments/ is a folder per room (cli, runner, data, store, ...): each is on the
# include path, and every .c under it is in the library except the CLI's.
EXP_DIRS := $(patsubst %/,%,$(sort $(dir $(wildcard experiments/*/*.c experiments/*/*.h))))
INCLUDES := -Icore -Iops -Igraph $(EXP_DIRS:%=-I%)
HEADERS  := $(wildcard core/*.h ops/*.h graph/*.h experiments/*/*.h)
CFLAGS   = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Wshadow -Wno-unused-parameter \
            -g $(OPT) -fopenmp -fPIC $(INCLUDES) \
            $(PKG_CFLAGS) $(MPI_FLAGS)
LDLIBS   = $(PKG_LIBS) $(MPI_LIBS) -ldl -lm
LDFLAGS  := -fopenmp -rdynamic
PLUGIN_SAN :=
ifeq ($(SANITIZE),1)
  PLUGIN_SAN := -fsanitize=address,undefined
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  override BUILD := $(BUILD)-san
  override BIN := $(BUILD)/bin
endif

CLI_SRC  := $(wildcard experiments/cli/*.c)
LIB_SRC  := $(wildcard core/*.c ops/*.c graph/*.c) $(filter-out $(CLI_SRC),$(wildcard experiments/*/*.c))
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
PLUGIN_SRC := $(wildcard ops/plugins/*.c)
PLUGINS  := $(PLUGIN_SRC:ops/plugins/%.c=$(BUILD)/plugins/%.so)

.PHONY: all deps test soak check check-san check-valgrind clean data demo bench bench-mpi bench-deps plugins accuracy accuracy-deps fuzz fuzz-build fuzz-merge fuzz-cpu
all: deps $(BIN)/loupe $(BUILD)/libloupe.a $(BUILD)/libloupe.so plugins

deps:
	@LOUPE_MPI=$(MPI) sh scripts/deps.sh

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The commit and flags each run records (experiments/provenance/provenance.h): the
# header is rewritten only when they change, so only provenance.o rebuilds then.
BUILD_INFO := $(BUILD)/gen/loupe_build.h
$(BUILD_INFO): FORCE
	@sh scripts/build_info.sh $@ $(filter-out -I%,$(CFLAGS))
$(BUILD)/experiments/provenance/provenance.o: $(BUILD_INFO)
$(BUILD)/experiments/provenance/provenance.o: CFLAGS += -I$(BUILD)/gen
FORCE:
# Which of dist_mpi.c / dist_serial.c is compiled in: a change of MPI rebuilds both.
MPI_STAMP := $(BUILD)/gen/loupe_mpi
$(MPI_STAMP): FORCE
	@mkdir -p $(dir $@); echo "$(MPI_ON)" | cmp -s - $@ || echo "$(MPI_ON)" > $@
$(BUILD)/experiments/dist/dist_mpi.o $(BUILD)/experiments/dist/dist_serial.o: $(MPI_STAMP)

$(BUILD)/libloupe.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/libloupe.so: $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/loupe: $(CLI_OBJ) $(BUILD)/libloupe.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) -Wl,--whole-archive $(BUILD)/libloupe.a -Wl,--no-whole-archive $(LDLIBS)

plugins: $(PLUGINS)
$(BUILD)/plugins/%.so: ops/plugins/%.c ops/loupe_op.h core/lp_base.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -fPIC -shared -Iops -Icore $(PLUGIN_SAN) -o $@ $<

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(BUILD)/libloupe.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< -Wl,--whole-archive $(BUILD)/libloupe.a -Wl,--no-whole-archive $(LDLIBS) -lcriterion

# The corpus replay test compiles the fuzz harnesses in (tests/fuzz/*.c).
$(BUILD)/tests/test_fuzz_corpus: $(wildcard tests/fuzz/*.c tests/fuzz/*.h)

data: data/mnist/.verified
data/mnist/.verified: scripts/fetch_mnist.sh
	@sh scripts/fetch_mnist.sh data/mnist

# Unit suites first (fast, precise), then the end-to-end scripts. png_info decodes the
# pictures e2e_report.sh checks.
test: all $(TEST_BIN) $(BUILD)/tests/png_info data
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; LOUPE_BIN=$(BIN)/loupe LOUPE_BUILD=$(BUILD) $$t --jobs 2; done
	@set -e; for s in tests/e2e_*.sh; do [ -f "$$s" ] || continue; echo "== $$s"; LOUPE_BIN=$(BIN)/loupe LOUPE_BUILD=$(BUILD) sh $$s; done

# The README's main command: from a fresh clone to a trained two-conv net.
demo: all data
	$(BIN)/loupe train configs/mnist_two_conv.yaml

# Crash safety and concurrency at volume (tests/soak.sh, docs/robustness.md): 1000
# kill -9 with bit-identical resumes, 8 writers and 2 readers on the same runs.db, a
# full disk and a read-only database mid-run. Not part of `make test`; about 20 minutes
# on 2 cores. Knobs: SOAK_KILLS, SOAK_WRITERS, SOAK_READERS, SOAK_FAULTS, SOAK_EPOCHS.
soak: all data
	@LOUPE_BIN=$(BIN)/loupe LOUPE_BUILD=$(BUILD) sh tests/soak.sh

# Final test accuracy of each shipped config for seeds 1-3, with medians, and the
# Fashion-MNIST net beside PyTorch (tens of minutes on 2 cores; docs/accuracy.md).
accuracy: all data accuracy-deps
	sh scripts/accuracy.sh $(BIN)/loupe

# Fashion-MNIST (dataset-fashion-mnist) and PyTorch for the accuracy table's rows.
accuracy-deps:
	@LOUPE_EXTRA_DEPS="dataset-fashion-mnist python3-torch" sh scripts/deps.sh

# loupe beside PyTorch, one table (bench/run.sh; BENCH_QUICK=1 for a short subset).
# PyTorch rows need python3-torch: make bench-deps.
bench: $(BIN)/loupe data
	LOUPE_BIN=$(BIN)/loupe sh bench/run.sh

# Training images/s on 1 and 2 MPI ranks, parallel efficiency, and the allreduce's
# cost alone (scripts/bench_mpi.sh; figures in docs/scaling.md). About 1-2 minutes.
bench-mpi: $(BIN)/loupe data
	@sh scripts/bench_mpi.sh $(BIN)/loupe $(BUILD)

bench-deps:
	@LOUPE_EXTRA_DEPS=python3-torch sh scripts/deps.sh

# `make check` (docs/robustness.md): every Criterion suite built with ASan+UBSan, where
# any sanitizer report (leaks included) fails the run, then a short training run under
# valgrind, built without -march=native (valgrind 3.19 cannot run AVX-512), that must
# show no error and no definite leak (2 threads: the lanes and the worker pool too).
# About 2 minutes on 2 cores, build included.
check:
	@$(MAKE) --no-print-directory SANITIZE=1 check-san
	@$(MAKE) --no-print-directory BUILD=$(BUILD)-vg BIN=$(BUILD)-vg/bin OPT="-O2" check-valgrind

# allocator_may_return_null: tests of out-of-memory paths ask for absurd sizes on purpose.
CHECK_SAN_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:allocator_may_return_null=1:strict_string_checks=1 \
                 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
                 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
check-san: $(TEST_BIN) plugins
	@fail=0; for t in $(TEST_BIN); do \
	  if $(CHECK_SAN_ENV) LOUPE_BIN=$(BIN)/loupe LOUPE_BUILD=$(BUILD) $$t --jobs 2 >$$t.log 2>&1 \
	     && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Leak|Undefined)' $$t.log; \
	  then echo "ok   $$t (ASan+UBSan): $$(grep -o 'Tested: .*' $$t.log)"; \
	  else echo "FAIL $$t (ASan+UBSan): see $$t.log"; grep -E 'FAIL|ERROR|runtime error|SUMMARY' $$t.log | head -20; fail=1; fi; \
	done; exit $$fail

VALGRIND := valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
            --show-leak-kinds=definite --suppressions=$(CURDIR)/tests/valgrind.supp
check-valgrind: $(BIN)/loupe data
	@command -v valgrind >/dev/null || { echo "make check needs valgrind: apt-get install valgrind" >&2; exit 1; }
	@rm -rf $(BUILD)/check && mkdir -p $(BUILD)/check
	@echo "== loupe train under valgrind (256 images, 1 epoch, 2 threads: two lanes)"
	@OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1 $(VALGRIND) --log-file=$(BUILD)/check/valgrind.log \
	  $(BIN)/loupe train configs/mnist_two_conv.yaml --set data.train_limit=256 --set data.test_limit=200 \
	  --set train.epochs=1 --set train.batch_size=32 --threads 2 --quiet --db $(BUILD)/check/runs.db \
	  || { echo "FAIL valgrind: see $(BUILD)/check/valgrind.log"; tail -30 $(BUILD)/check/valgrind.log; exit 1; }
	@grep -E 'ERROR SUMMARY|definitely lost' $(BUILD)/check/valgrind.log | sed 's/^==[0-9]*== */   /'

# libFuzzer targets (tests/fuzz/; docs/robustness.md): `make fuzz FUZZ_SECONDS=N` builds
# each with clang -fsanitize=fuzzer,address,undefined and runs it N seconds, one at a
# time under nice, on tests/fuzz/corpus/<target> (new inputs go to $(FUZZ_BUILD)/corpus).
# `make fuzz-merge` minimises what was found into the committed corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := config idx checkpoint safetensors runsdb
FUZZ_BUILD   := build-fuzz
FUZZ_CC      ?= clang
FUZZ_CFLAGS  = -std=c11 -D_GNU_SOURCE -g -O1 -march=native -fopenmp -fno-omit-frame-pointer \
                -fno-sanitize-recover=undefined $(INCLUDES) -Itests/fuzz \
                $(PKG_CFLAGS)
FUZZ_OBJ     := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
# ASan returns NULL above 256 MB instead of aborting, so a config asking for a huge
# model exercises loupe's out-of-memory errors rather than stopping the fuzzer.
FUZZ_ENV     := ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=256:detect_leaks=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
FUZZ_FLAGS   := -malloc_limit_mb=1024 -rss_limit_mb=3072 -timeout=20 -print_final_stats=1

$(FUZZ_BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_model.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJ) $(LDLIBS)

$(FUZZ_BUILD)/gen_seeds: tests/fuzz/gen_seeds.c tests/fuzz/fuzz_model.h tests/fuzz/fuzz_runsdb.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=address,undefined -o $@ $< $(FUZZ_OBJ) $(LDLIBS)

fuzz-build: $(FUZZ_BINS) $(FUZZ_BUILD)/gen_seeds
	@mkdir -p $(FUZZ_TARGETS:%=tests/fuzz/corpus/%) && $(FUZZ_BUILD)/gen_seeds

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes; \
	  dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_ENV) nice $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_FLAGS) $$dict -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t- $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t \
	    2>&1 | tee $(FUZZ_BUILD)/fuzz_$$t.log | grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::|ERROR|SUMMARY" || true; \
	  ! grep -qE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error' $(FUZZ_BUILD)/fuzz_$$t.log; done

# `make fuzz-cpu FUZZ_CPU_SECONDS=3600`: each target until it has used that much CPU
# time (tests/fuzz/fuzz_cpu.sh; on a shared machine wall time says little), one line each.
FUZZ_CPU_SECONDS ?= 3600
fuzz-cpu: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do bash tests/fuzz/fuzz_cpu.sh $$t $(FUZZ_CPU_SECONDS); done

# Keeps the hand-written and generated seeds (seed-*, shipped-*, small-*) and a minimal
# set of the rest covering the same edges (-use_counters=0: edges, not hit counts).
fuzz-merge: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do m=$(FUZZ_BUILD)/merge/$$t; rm -rf $$m; mkdir -p $$m $(FUZZ_BUILD)/corpus/$$t; \
	  $(FUZZ_ENV) nice $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_FLAGS) -use_counters=0 -merge=1 $$m tests/fuzz/corpus/$$t \
	    $(FUZZ_BUILD)/corpus/$$t 2>&1 | grep 'MERGE-OUTER: [0-9]* new'; \
	  find tests/fuzz/corpus/$$t -type f ! -name 'seed-*' ! -name 'shipped-*' ! -name 'small-*' -delete; \
	  cp $$m/* tests/fuzz/corpus/$$t/; echo "$$t: $$(ls tests/fuzz/corpus/$$t | wc -l) files"; done

clean:
	rm -rf build build-san build-vg bin $(FUZZ_BUILD)
