# loupe - see README.md. `make` builds bin/loupe and build/libloupe.{a,so};
# `make test` runs the Criterion suites and the end-to-end checks.

BUILD    ?= build
BIN      ?= bin
CC       ?= gcc
SANITIZE ?= 0
PKGS     := yaml-0.1 sqlite3 zlib openblas

OPT      ?= -O2 -march=native
CFLAGS   := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Wshadow -Wno-unused-parameter \
            -g $(OPT) -fopenmp -fPIC -Icore -Iops -Igraph -Iexperiments \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldl -lm
LDFLAGS  := -fopenmp -rdynamic
PLUGIN_SAN :=
ifeq ($(SANITIZE),1)
  PLUGIN_SAN := -fsanitize=address,undefined
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  override BUILD := $(BUILD)-san
  override BIN := $(BUILD)/bin
endif

CLI_SRC  := experiments/main.c $(wildcard experiments/cli_*.c)
LIB_SRC  := $(wildcard core/*.c ops/*.c graph/*.c) $(filter-out $(CLI_SRC),$(wildcard experiments/*.c))
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
PLUGIN_SRC := $(wildcard ops/plugins/*.c)
PLUGINS  := $(PLUGIN_SRC:ops/plugins/%.c=$(BUILD)/plugins/%.so)

.PHONY: all deps test check clean data demo bench bench-deps plugins accuracy
all: deps $(BIN)/loupe $(BUILD)/libloupe.a $(BUILD)/libloupe.so plugins

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c $(wildcard core/*.h ops/*.h graph/*.h experiments/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

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

data: data/mnist/.verified
data/mnist/.verified: scripts/fetch_mnist.sh
	@sh scripts/fetch_mnist.sh data/mnist

# Unit suites first (fast, precise), then the end-to-end scripts.
test: all $(TEST_BIN) data
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; LOUPE_BIN=$(BIN)/loupe LOUPE_BUILD=$(BUILD) $$t --jobs 2; done
	@set -e; for s in tests/e2e_*.sh; do [ -f "$$s" ] || continue; echo "== $$s"; LOUPE_BIN=$(BIN)/loupe LOUPE_BUILD=$(BUILD) sh $$s; done

# The README's main command: from a fresh clone to a trained two-conv net.
demo: all data
	$(BIN)/loupe train configs/mnist_two_conv.yaml

# Final test accuracy of each shipped MNIST config for seeds 1-3 (minutes; docs/accuracy.md).
accuracy: all data
	sh scripts/accuracy.sh $(BIN)/loupe

# loupe beside PyTorch, one table (bench/run.sh; BENCH_QUICK=1 for a short subset).
# PyTorch rows need python3-torch: make bench-deps.
bench: $(BIN)/loupe data
	LOUPE_BIN=$(BIN)/loupe sh bench/run.sh

bench-deps:
	@LOUPE_EXTRA_DEPS=python3-torch sh scripts/deps.sh

check:
	$(MAKE) test SANITIZE=1

clean:
	rm -rf build build-san bin
