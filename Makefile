# eddy: plain GNU make, objects out of tree in $(BUILD).
#
#   make            build the library, the eddy binary and the examples
#   make run        build and start eddy with its built-in default services
#   make test       unit + end-to-end tests, then the same under ASan+UBSan
#   make unit       unit tests only        make e2e   end-to-end tests only
#   make asan-test  the sanitizer pass only
#   make fuzz       build the libFuzzer targets and run each FUZZ_SECONDS (60)
#   make format     clang-format every C file
#   make clean

VERSION := 0.1.0
BUILD ?= build
CC ?= cc
PYTHON := /usr/bin/python3

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Werror=implicit-function-declaration
ifeq ($(CI),true)
WARN += -Werror
endif
OPT ?= -O2
CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -fvisibility=hidden -Iinclude -Iservices \
	-DEDDY_VERSION='"$(VERSION)"' -MMD -MP
LDLIBS := -lpthread

LIB_SRC := src/loop.c src/timer.c src/signal.c src/addr.c src/buf.c src/tcp.c src/http_parse.c src/http.c
SVC_SRC := $(wildcard services/*.c)
CMD_SRC := cmd/eddy.c cmd/log.c cmd/access_log.c
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

LIB := $(BUILD)/libeddy.a
SVC_LIB := $(BUILD)/libeddy-services.a
obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

.PHONY: all run test unit e2e asan-test deps fuzz format clean
.DEFAULT_GOAL := all
# Objects of the examples and tests are intermediates of pattern rules; keep
# them, so a second `make test` does not rebuild what did not change.
.SECONDARY:

all: $(BUILD)/eddy $(EXAMPLES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(call obj,$(LIB_SRC))
	$(AR) rcs $@ $^

$(SVC_LIB): $(call obj,$(SVC_SRC))
	$(AR) rcs $@ $^

$(BUILD)/eddy: $(call obj,$(CMD_SRC)) $(SVC_LIB) $(LIB)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(SVC_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $^ -o $@ -lcriterion $(LDLIBS)

# The parser's test also runs llhttp (Debian's node-llhttp sources) as a
# differential oracle. llhttp's warnings are not ours to fix: -w for it only.
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp
ORACLE_OBJ := $(BUILD)/obj/tests/unit/llhttp_oracle.o \
	$(patsubst %,$(BUILD)/obj/llhttp/%.o,api http llhttp)

$(BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(CFLAGS) -w -I$(LLHTTP_INC) -c $< -o $@

$(BUILD)/obj/tests/unit/llhttp_oracle.o $(BUILD)/obj/tests/unit/test_http_parse.o: \
	ALL_CFLAGS += -I$(LLHTTP_INC)
$(BUILD)/tests/test_http_parse: $(ORACLE_OBJ)

run: $(BUILD)/eddy
	$(BUILD)/eddy

deps:
	@scripts/ensure-deps test

# Criterion runs each test in a forked worker; --jobs 2 matches the machine.
unit: deps $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t --jobs 2 --short-filename; done

e2e: deps $(BUILD)/eddy $(EXAMPLES)
	EDDY_BIN=$(abspath $(BUILD)/eddy) EDDY_EXAMPLES=$(abspath $(BUILD)/examples) \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

# The sanitizer pass builds everything again in its own tree and runs both
# suites against it. halt_on_error makes any report fail the run.
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
asan-test: deps
	$(MAKE) --no-print-directory BUILD=$(BUILD)/asan CFLAGS="$(SAN_FLAGS)" unit e2e

test: unit e2e asan-test

# Fuzzing: libFuzzer targets built with clang in $(BUILD)/fuzz, each run for
# FUZZ_SECONDS on a scratch copy of its seed corpus (the committed corpus
# does not grow) plus fuzz/regressions. A crash leaves its input in
# $(BUILD)/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_CC := clang
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -MMD -MP
FUZZ_INC := -Iinclude -Itests/unit -I$(LLHTTP_INC)
fuzz_obj = $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(1))
FUZZ_COMMON := $(call fuzz_obj,src/http_parse.c fuzz/reference.c)
FUZZ_ORACLE := $(call fuzz_obj,tests/unit/llhttp_oracle.c) \
	$(patsubst %,$(BUILD)/fuzz/obj/llhttp/%.o,api http llhttp)
# target:corpus pairs
FUZZERS := http_parse:http chunked:chunked

$(BUILD)/fuzz/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -w -I$(LLHTTP_INC) -c $< -o $@

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) $(FUZZ_INC) -c $< -o $@

$(BUILD)/fuzz/fuzz_http_parse: $(call fuzz_obj,fuzz/fuzz_http_parse.c) $(FUZZ_COMMON) $(FUZZ_ORACLE)
$(BUILD)/fuzz/fuzz_chunked: $(call fuzz_obj,fuzz/fuzz_chunked.c) $(FUZZ_COMMON)
$(BUILD)/fuzz/fuzz_%:
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@

fuzz:
	@scripts/ensure-deps fuzz
	@$(MAKE) --no-print-directory $(foreach f,$(FUZZERS),$(BUILD)/fuzz/fuzz_$(firstword $(subst :, ,$(f))))
	@set -e; for pair in $(FUZZERS); do \
		f=$${pair%%:*}; c=$${pair#*:}; scratch=$(BUILD)/fuzz/corpus-$$c; \
		rm -rf $$scratch; mkdir -p $$scratch; cp fuzz/corpus/$$c/* $$scratch/; \
		echo "== fuzz_$$f for $(FUZZ_SECONDS) s"; \
		$(BUILD)/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/http.dict \
			-artifact_prefix=$(BUILD)/fuzz/ -print_final_stats=1 $$scratch fuzz/regressions/$$c; \
	done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)
