# bashexec — build, run and test. `make help` lists the targets.
CC      ?= cc
PKGS    := librabbitmq hiredis jansson libmongoc-1.0 libmicrohttpd libcurl libcrypto
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
OPT     ?= -O2 -g
CFLAGS  ?=
BX_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) -MMD -MP -Ilib \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
# `make SAN=1` builds everything with AddressSanitizer and UBSan.
ifdef SAN
BX_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS   += -fsanitize=address,undefined
BUILD   := build/san
BIN     := build/san/bin
else
BUILD   := build/rel
BIN     := bin
endif

LIB_SRC := $(wildcard lib/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
API_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard api/*.c))
WRK_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard worker/*.c))
REC_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard recorder/*.c))
BX_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard producer/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

PROGS := $(BIN)/bx-api $(BIN)/bx-worker $(BIN)/bx-recorder $(BIN)/bx

.PHONY: all deps run up down test unit e2e valgrind bench fuzz chaos clean help
all: $(PROGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BX_CFLAGS) -c $< -o $@

$(BUILD)/libbx.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BIN)/bx-api: $(API_OBJ) $(BUILD)/libbx.a
$(BIN)/bx-worker: $(WRK_OBJ) $(BUILD)/libbx.a
$(BIN)/bx-recorder: $(REC_OBJ) $(BUILD)/libbx.a
$(BIN)/bx: $(BX_OBJ) $(BUILD)/libbx.a
$(PROGS):
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# A unit test links libbx and, by its name, the objects of the process it
# tests (all of that directory's but main.o): test_lib_* nothing more,
# test_api_* api/, test_recorder_* recorder/, any other worker/.
TEST_LINK = $(CC) $(BX_CFLAGS) -Iworker -Iapi -Irecorder $(LDFLAGS) -o $@ \
            $(filter %.c %.o,$^) $(BUILD)/libbx.a $(LDLIBS) $(shell pkg-config --libs cmocka)
$(BUILD)/tests/test_lib_%: tests/unit/test_lib_%.c $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	$(TEST_LINK)
$(BUILD)/tests/test_api_%: tests/unit/test_api_%.c $(filter-out %/main.o,$(API_OBJ)) $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	$(TEST_LINK)
$(BUILD)/tests/test_recorder_%: tests/unit/test_recorder_%.c $(filter-out %/main.o,$(REC_OBJ)) $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	$(TEST_LINK)
$(BUILD)/tests/test_%: tests/unit/test_%.c $(filter-out %/main.o,$(WRK_OBJ)) $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	$(TEST_LINK)

# handlers_dashboard.c builds the files of api/dashboard/ in with .incbin,
# which -MMD does not see
$(BUILD)/api/handlers_dashboard.o: $(wildcard api/dashboard/*)

deps:
	@scripts/deps.sh

# The stack and the tests call `make deps` only when something is missing.
DEPS_OK = scripts/deps.sh --check >/dev/null 2>&1 || scripts/deps.sh

run: ; @$(DEPS_OK); $(MAKE) --no-print-directory all && compose/stack.sh run
up:  ; @$(DEPS_OK); $(MAKE) --no-print-directory all && compose/stack.sh up
down: ; @compose/stack.sh down

unit: $(UNIT_BIN)
test:
	@$(DEPS_OK)
	@$(MAKE) --no-print-directory all unit
	@BX_BIN_DIR=$(abspath $(BIN)) tests/run.sh $(BUILD) $(T)

# Each unit test under valgrind's memcheck: any error or leak (definite or
# possible) fails it.
VALGRIND ?= valgrind -q --error-exitcode=1 --leak-check=full --num-callers=30
valgrind:
	@$(DEPS_OK)
	@$(MAKE) --no-print-directory unit
	@BX_UNIT_ONLY=1 BX_UNIT_WRAPPER="$(VALGRIND)" BX_UNIT_TIMEOUT=900 tests/run.sh $(BUILD) $(T)

# The baselines still run when a part of bashexec does not build: its rows say n/a.
bench:
	@$(DEPS_OK)
	@$(MAKE) --no-print-directory -k all || echo "bench: some programs did not build: their parts say n/a" >&2
	@tests/bench/run.sh
# FUZZ_SECONDS per target (default 60); crashes are kept as regression inputs.
fuzz: ; @$(DEPS_OK); tests/fuzz/run.sh $(T)

# The fault suite: N jobs (CHAOS_N, default 5000) through worker kills, a
# RabbitMQ restart, a Redis pause and a MongoDB outage; nothing may be lost.
CHAOS_N ?= 5000
chaos:
	@$(DEPS_OK)
	@$(MAKE) --no-print-directory all
	@BX_BIN_DIR=$(abspath $(BIN)) /usr/bin/python3 tests/chaos/chaos.py --jobs $(CHAOS_N) $(CHAOS_ARGS)

clean:
	rm -rf build bin

help:
	@echo "make [all|deps|run|up|down|test|valgrind|bench|fuzz|chaos|clean]  (SAN=1 for sanitizers, T=name to filter tests)"

-include $(shell find build -name '*.d' 2>/dev/null)
