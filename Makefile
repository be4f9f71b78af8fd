# sealora top-level Makefile. See README.md and docs/architecture.md.
#
#   make            build static libraries (shared, crypto, roles) and bin/*
#   make deps       install missing Debian packages (root) or print the command
#   make test       deps + build + every Check suite + end-to-end tests
#   make sanitize   the same tests built with ASan + UBSan (= make test SAN=1)
#   make bench      build and run the benchmarks (prints figures, asserts nothing)
#   make fuzz       run each fuzz target for a bounded time (FUZZ_SECONDS)
#   make demo       the whole job end to end on the embedded default model
#
# Variables: SAN=1 (sanitizers), NATIVE=1 (-march=native; binaries then only
# run on CPUs like this one), V=1 (echo commands).

SHELL := /bin/bash
CC ?= cc
ifeq ($(CC),cc)
CC := gcc
endif

SAN ?= 0
NATIVE ?= 0
FUZZ ?= 0
ifeq ($(FUZZ),1)
# libFuzzer build: clang, coverage on every library, no OpenMP (pragmas ignored).
CC := clang
BUILD := build/fuzz
BIN := build/fuzz/bin
OPT := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -Wno-unknown-pragmas
WARN_EXTRA :=
OMP :=
else ifeq ($(SAN),1)
BUILD := build/san
BIN := build/san/bin
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
BUILD := build/rel
BIN := bin
OPT := -O2 -g
endif
OMP ?= -fopenmp
WARN_EXTRA ?= -Wno-format-truncation
ifeq ($(NATIVE),1)
OPT += -march=native
endif

# Debian packages the build and the tests need (see docs/dependencies.md).
DEB_PKGS := gcc make pkg-config libopenblas-dev libopenblas-openmp-dev libopenblas0-openmp \
            libopenblas0-pthread libsodium-dev \
            libnanomsg-dev check libsubunit-dev libjansson-dev libinih-dev libpcre2-dev \
            libssl-dev openssl python3-regex
FUZZ_PKGS := clang libclang-rt-14-dev
DEPS_PKGS ?= $(DEB_PKGS)
PC_LIBS := libsodium nanomsg jansson inih libpcre2-8 libcrypto libssl
# OpenBLAS's OpenMP build, linked by path (not through the libopenblas.so.0
# alternative, which defaults to the pthread build): BLAS and our own
# OpenMP loops then share one thread pool instead of oversubscribing the
# cores with two (docs/architecture.md, "Threads").
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLAS_DIR := /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS_CFLAGS := -I/usr/include/$(MULTIARCH)/openblas-openmp
BLAS_LDLIBS := -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas

# Lazily evaluated: pkg-config may only work after `make deps`.
PC_CFLAGS = $(BLAS_CFLAGS) $(shell pkg-config --cflags $(PC_LIBS) 2>/dev/null)
PC_LDLIBS = $(BLAS_LDLIBS) $(shell pkg-config --libs $(PC_LIBS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LDLIBS = $(shell pkg-config --libs check 2>/dev/null)

CFLAGS_BASE := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE $(OMP) -I. -I$(BUILD)/gen
CFLAGS = $(CFLAGS_BASE) $(WARN_EXTRA) $(OPT) $(PC_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS_ALL = $(OPT) $(OMP)
LDLIBS_ALL = $(PC_LDLIBS) -lm -lpthread

ifneq ($(V),1)
Q := @
endif

# Layers. Roles depend on crypto and shared; crypto depends on shared only.
SHARED_SRC := $(sort $(wildcard shared/*.c))
CRYPTO_SRC := $(sort $(wildcard crypto/*.c))
ROLE_LIB_SRC = $(filter-out $(1)/main.c,$(sort $(wildcard $(1)/*.c)))
SERVER_SRC := $(call ROLE_LIB_SRC,server)
CLIENT_SRC := $(call ROLE_LIB_SRC,client)
AUDIT_SRC := $(call ROLE_LIB_SRC,audit)
TEST_SRC := $(sort $(wildcard tests/check_*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_SHARED := $(BUILD)/libsealora_shared.a
LIB_CRYPTO := $(BUILD)/libsealora_crypto.a
LIB_SERVER := $(BUILD)/libsealora_server.a
LIB_CLIENT := $(BUILD)/libsealora_client.a
LIB_AUDIT := $(BUILD)/libsealora_audit.a
LIBS_BASE := $(LIB_CRYPTO) $(LIB_SHARED)

BINARIES := $(BIN)/sealora-server $(BIN)/sealora-client $(BIN)/sealora-audit
TEST_RUNNER := $(BUILD)/tests/check_all
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all deps test run-tests sanitize bench run-bench fuzz run-fuzz demo clean lint base-model
all: $(BINARIES)

define make_lib
$(1): $(call obj,$(2))
	@mkdir -p $$(dir $$@)
	$(Q)rm -f $$@ && ar rcs $$@ $$^
endef
$(eval $(call make_lib,$(LIB_SHARED),$(SHARED_SRC)))
$(eval $(call make_lib,$(LIB_CRYPTO),$(CRYPTO_SRC)))
$(eval $(call make_lib,$(LIB_SERVER),$(SERVER_SRC)))
$(eval $(call make_lib,$(LIB_CLIENT),$(CLIENT_SRC)))
$(eval $(call make_lib,$(LIB_AUDIT),$(AUDIT_SRC)))

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BIN)/sealora-server: $(call obj,server/main.c) $(LIB_SERVER) $(LIBS_BASE)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)
$(BIN)/sealora-client: $(call obj,client/main.c) $(LIB_CLIENT) $(LIBS_BASE)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)
$(BIN)/sealora-audit: $(call obj,audit/main.c) $(LIB_AUDIT) $(LIBS_BASE)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# The test runner finds every `Suite *NAME_suite(void)` in tests/check_*.c,
# so adding a suite needs no edit here. Regenerated every run (cheap) so a
# removed suite disappears; rewritten only when the list changes.
$(BUILD)/gen/suites.h: FORCE
	@mkdir -p $(dir $@)
	$(Q)sed -n 's/^Suite \*\([a-z0-9_]*\)_suite(void).*/\1/p' $(TEST_SRC) | sort -u > $@.names
	$(Q){ while read s; do echo "Suite *$${s}_suite(void);"; done < $@.names; \
	      echo "#define SL_ALL_SUITES \\"; \
	      while read s; do echo "    X($$s) \\"; done < $@.names; echo; } > $@.tmp
	$(Q)cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(call obj,tests/check_main.c): $(BUILD)/gen/suites.h
$(BUILD)/obj/tests/%.o: CFLAGS += $(CHECK_CFLAGS)
$(TEST_RUNNER): $(call obj,$(TEST_SRC) tests/check_main.c tests/fixtures.c) $(LIB_SERVER) $(LIB_CLIENT) $(LIB_AUDIT) $(LIBS_BASE)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LDLIBS) $(LDLIBS_ALL)

$(BUILD)/bench/%: $(call obj,bench/%.c) $(LIB_SERVER) $(LIB_CLIENT) $(LIBS_BASE)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

deps:
	@missing=""; for p in $(DEPS_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	echo "deps: missing:$$missing"; \
	if [ "$$(id -u)" = 0 ]; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "deps: run as root: apt-get install -y --no-install-recommends$$missing"; exit 1; \
	fi

# `make test` = deps, then a fresh make (so pkg-config sees the new packages).
test: deps
	$(Q)$(MAKE) --no-print-directory run-tests SAN=$(SAN)

run-tests: $(BINARIES) $(TEST_RUNNER)
	@echo "== unit tests ($(BUILD)) =="
	$(Q)CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-300} SEALORA_TEST_BIN=$(abspath $(BIN)) $(TEST_RUNNER)
	@echo "== end-to-end tests =="
	$(Q)SEALORA_BIN=$(abspath $(BIN)) SAN=$(SAN) bash tests/e2e/run.sh

sanitize:
	$(Q)$(MAKE) --no-print-directory test SAN=1

bench: deps
	$(Q)$(MAKE) --no-print-directory run-bench

run-bench: $(BENCHES) $(BINARIES)
	$(Q)for b in $(BENCHES); do echo "== $$b =="; $$b || exit 1; done

# Each fuzz/fuzz_NAME.c is a libFuzzer target; `make fuzz` runs each for
# FUZZ_SECONDS (default 60) on its seed corpus fuzz/corpus/NAME.
FUZZ_SECONDS ?= 60
FUZZERS := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
$(BUILD)/fuzz/%: $(call obj,fuzz/%.c) $(LIB_SERVER) $(LIB_CLIENT) $(LIB_AUDIT) $(LIBS_BASE)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	$(Q)$(CC) $(OPT) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS_ALL)

fuzz:
	$(Q)$(MAKE) --no-print-directory deps DEPS_PKGS="$(DEB_PKGS) $(FUZZ_PKGS)"
	$(Q)$(MAKE) --no-print-directory run-fuzz FUZZ=1

run-fuzz: $(FUZZERS)
	$(Q)for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p fuzz/corpus/$$n $(BUILD)/fuzz/work/$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s) =="; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(BUILD)/fuzz/work/$$n fuzz/corpus/$$n 2>&1 \
	    | grep -E 'stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY' ; \
	  [ $${PIPESTATUS[0]} -eq 0 ] || exit 1; done

# The whole job on the embedded base model (models/demo.sh; < 10 minutes on
# 2 cores): the demo domain, a deployment, the emulator, a server and three
# site agents on loopback, the offsite table, the budget and the audit.
demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bash models/demo.sh build/demo

# Rebuilds the embedded base model (models/base/) from Debian's free text:
# about an hour on 2 cores, resumable (models/recipe/README.md).
base-model: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bash models/recipe/base-model.sh

lint:
	$(Q)bash tests/lint_layers.sh

clean:
	rm -rf build bin

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
