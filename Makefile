# eddy: plain GNU make, objects out of tree in $(BUILD).
#
#   make            build the library, the eddy binary and the examples
#   make run        build and start eddy with its built-in default services
#   make test       unit + end-to-end tests, then the same under ASan+UBSan
#   make unit       unit tests only        make e2e   end-to-end tests only
#   make asan-test  the sanitizer pass only
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

.PHONY: all run test unit e2e asan-test deps format clean
.DEFAULT_GOAL := all

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

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
