# eddy: plain GNU make, objects out of tree in $(BUILD).
#
#   make            build the library, the eddy binary and the examples
#   make run        build and start eddy with its built-in default services
#   make test       unit + end-to-end tests, the same under ASan+UBSan, soak and fuzz for 60 s
#   make unit       unit tests only        make e2e   end-to-end tests only
#   make asan-test  the sanitizer pass only
#   make soak       bench/soak.sh: a mixed load for SOAK_SECONDS (60), memory and fds checked
#   make valgrind   the end-to-end suite with eddy under valgrind memcheck (minutes)
#   make fuzz       build the libFuzzer targets and run each FUZZ_SECONDS (60)
#   make bench      every benchmark in bench/, then docs/benchmarks.md (minutes)
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
CMD_SRC := cmd/eddy.c cmd/options.c cmd/handover.c cmd/log.c cmd/access_log.c
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

LIB := $(BUILD)/libeddy.a
SVC_LIB := $(BUILD)/libeddy-services.a
obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

.PHONY: all run test unit e2e asan-test fuzz format clean

# What the goals need from Debian is installed (scripts/ensure-deps) while
# this file is read, before any rule runs: make caches the directories it
# has looked in, so files that a package adds in the middle of a run (the
# llhttp sources) would not be seen.
deps_for = $(if $(filter test unit e2e asan-test soak,$(1)),test) \
	$(if $(filter fuzz fuzz-ci,$(1)),fuzz) $(if $(filter bench,$(1)),bench) \
	$(if $(filter valgrind,$(1)),valgrind)
$(foreach set,$(sort $(call deps_for,$(MAKECMDGOALS))),$(if \
	$(shell scripts/ensure-deps $(set) >&2 && echo ok),,$(error packages for "$(set)" are missing)))
.DEFAULT_GOAL := all
# Objects of the examples and tests are intermediates of pattern rules; keep
# them, so a second `make test` does not rebuild what did not change.
.SECONDARY:

all: $(BUILD)/eddy $(BUILD)/eddy-load $(EXAMPLES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(call obj,$(LIB_SRC))
	$(AR) rcs $@ $^

$(SVC_LIB): $(call obj,$(SVC_SRC))
	$(AR) rcs $@ $^

$(BUILD)/eddy: $(call obj,$(CMD_SRC)) $(SVC_LIB) $(LIB)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

LOAD_SRC := cmd/eddy-load.c cmd/eddy-load-worker.c cmd/eddy-load-http.c cmd/eddy-load-hist.c
$(BUILD)/eddy-load: $(call obj,$(LOAD_SRC)) $(LIB)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

# tests/e2e/test_load.py runs the load generator found next to $(BUILD)/eddy.
e2e: $(BUILD)/eddy-load

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

# Criterion runs each test in a forked worker; --jobs 2 matches the machine.
unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t --jobs 2 --short-filename; done

# The fault-injection tests (tests/e2e/test_faults.py) preload this to make
# malloc fail on demand. Never sanitized and never hidden: it must replace
# the allocator's public symbols.
$(BUILD)/tests/libfailmalloc.so: tests/fault/failmalloc.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) $(OPT) -g -fPIC -shared $< -o $@

e2e: $(BUILD)/eddy $(EXAMPLES) $(BUILD)/tests/libfailmalloc.so
	EDDY_BIN=$(abspath $(BUILD)/eddy) EDDY_EXAMPLES=$(abspath $(BUILD)/examples) \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

# The sanitizer pass builds everything again in its own tree and runs both
# suites against it. halt_on_error makes any report fail the run.
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
asan-test:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/asan CFLAGS="$(SAN_FLAGS)" unit e2e

test: unit e2e asan-test soak fuzz-ci

# Soak: one eddy under a mixed load (keep-alive, pipelined, echo, churn, slow
# clients) for SOAK_SECONDS; bench/soak.sh states the pass criteria (RSS
# growth after warm-up, fds back to baseline, no client errors). Samples and
# logs are left in $(BUILD)/soak/.
.PHONY: soak valgrind valgrind-e2e
SOAK_SECONDS ?= 60
soak: $(BUILD)/eddy $(BUILD)/eddy-load
	SOAK_SECONDS=$(SOAK_SECONDS) EDDY=$(abspath $(BUILD)/eddy) SOAK_OUT=$(abspath $(BUILD)/soak) \
		bench/soak.sh

# Memcheck: the end-to-end suite with every eddy and example under valgrind,
# built again without sanitizers (-O1 -g) in $(BUILD)/valgrind, the new
# copies that restarts start included (--trace-children). A memcheck
# error or a definite or indirect leak makes that process exit $(VG_EXIT), so
# the test that started it fails at teardown; afterwards every process's log
# is scanned as well, which also covers processes a test killed or whose exit
# status it did not check. Known, reported, harmless leaks are suppressed
# in tests/fault/valgrind.supp, each with its reason. Deselected:
# - the tests that serve files from the static service (test_static.py, and
#   those of test_hostile.py and test_faults.py with static in the name or
#   the fixture, test_chaos among them): valgrind 3.19, Debian 12's, does
#   not know openat2(2), so every file is a 500;
# - tests that bound eddy's RSS (memcheck's shadow memory is in it):
#   test_body_flood_without_reading_is_bounded_per_connection and
#   test_3000_connections_opened_and_abandoned[http-partial];
# - tests that look at what valgrind changes in the process: its name
#   (memcheck-amd64-, not eddy: test_upgrade_needs_a_pid_file_naming_eddy,
#   test_two_workers_serve_from_two_threads) and its open-file limit (valgrind
#   keeps some fds for itself: test_open_file_limit_is_raised_and_logged).
# The failmalloc tests skip themselves (memcheck brings its own malloc).
VG_EXIT := 97
VG_FLAGS := -O1 -g -fno-omit-frame-pointer -DEDDY_MALLOC_BLOCKS
VG_DESELECT := -k "not static and not test_big_response_never_read_then_client_leaves \
	and not test_reset_mid_file_response and not test_reset_mid_range_and_head \
	and not test_half_close_after_big_file and not test_file_shrinks_mid_response and not test_chaos \
	and not test_body_flood_without_reading_is_bounded_per_connection \
	and not (test_3000_connections_opened_and_abandoned and http-partial) \
	and not test_upgrade_needs_a_pid_file_naming_eddy and not test_two_workers_serve_from_two_threads \
	and not test_open_file_limit_is_raised_and_logged"
# By its full path: some tests start eddy with an environment without PATH.
VALGRIND := $(or $(shell command -v valgrind),valgrind) --tool=memcheck --trace-children=yes --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--error-exitcode=$(VG_EXIT) --num-callers=30 --suppressions=$(abspath tests/fault/valgrind.supp)
valgrind:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/valgrind CFLAGS="$(VG_FLAGS)" valgrind-e2e

valgrind-e2e: all $(BUILD)/tests/libfailmalloc.so
	@rm -rf $(BUILD)/vglogs && mkdir -p $(BUILD)/vglogs
	@rc=0; EDDY_BIN=$(abspath $(BUILD)/eddy) EDDY_EXAMPLES=$(abspath $(BUILD)/examples) \
		EDDY_WRAPPER="$(VALGRIND) --log-file=$(abspath $(BUILD)/vglogs)/%p.log" \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e $(VG_DESELECT) || rc=$$?; \
	cd $(BUILD)/vglogs; n=$$(ls | wc -l); bad=$$(grep -l 'ERROR SUMMARY: [1-9]' *.log || true); \
	cut=$$(grep -L 'ERROR SUMMARY:' *.log || true); \
	for f in $$bad; do echo "== $(BUILD)/vglogs/$$f"; cat $$f; done; \
	echo "valgrind: $$n processes, $$(echo $$bad | wc -w) with errors or leaks," \
		"$$(echo $$cut | wc -w) killed before the leak check (logs in $(BUILD)/vglogs)"; \
	[ $$rc -eq 0 ] && [ -z "$$bad" ]

# Fuzzing: libFuzzer targets built with clang in $(BUILD)/fuzz, each run for
# FUZZ_SECONDS on a scratch copy of its seed corpus (the committed corpus
# does not grow) plus fuzz/regressions. A crash leaves its input in
# $(BUILD)/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_CC := clang
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -MMD -MP
FUZZ_INC := -Iinclude -Iservices -Itests/unit -I$(LLHTTP_INC)
fuzz_obj = $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(1))
FUZZ_COMMON := $(call fuzz_obj,src/http_parse.c fuzz/reference.c)
FUZZ_ORACLE := $(call fuzz_obj,tests/unit/llhttp_oracle.c) \
	$(patsubst %,$(BUILD)/fuzz/obj/llhttp/%.o,api http llhttp)
# The connection-cycle targets run the whole library and the TCP services
# over a fake socket layer that takes their system calls at link time
# (--wrap), so the input decides every read, write, accept and epoll result.
FAKESOCK_SYMS := read readv recv recvfrom recvmsg write writev send sendto sendmsg sendfile \
	sendfile64 close shutdown socket bind listen connect accept accept4 getsockname getpeername \
	setsockopt getsockopt epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait eventfd \
	signalfd clock_gettime open fcntl
FUZZ_NET := $(call fuzz_obj,$(LIB_SRC) $(SVC_SRC) fuzz/fakesock.c)
# target:corpus pairs; a corpus's dictionary is fuzz/<corpus>.dict if there
# is one, else fuzz/http.dict
FUZZERS := http_parse:http chunked:chunked http_conn:http_conn tcp_services:tcp_services
FUZZERS += cmdline:cmdline

$(BUILD)/fuzz/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -w -I$(LLHTTP_INC) -c $< -o $@

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) $(FUZZ_INC) -c $< -o $@

$(BUILD)/fuzz/fuzz_http_parse: $(call fuzz_obj,fuzz/fuzz_http_parse.c) $(FUZZ_COMMON) $(FUZZ_ORACLE)
$(BUILD)/fuzz/fuzz_chunked: $(call fuzz_obj,fuzz/fuzz_chunked.c) $(FUZZ_COMMON)
$(BUILD)/fuzz/fuzz_http_conn: $(call fuzz_obj,fuzz/fuzz_http_conn.c) $(FUZZ_NET)
$(BUILD)/fuzz/fuzz_tcp_services: $(call fuzz_obj,fuzz/fuzz_tcp_services.c) $(FUZZ_NET)
# eddy's command-line parser, with the services and the library it names.
$(BUILD)/fuzz/fuzz_cmdline: $(call fuzz_obj,fuzz/fuzz_cmdline.c cmd/options.c cmd/log.c \
	$(SVC_SRC) $(LIB_SRC))
$(call fuzz_obj,fuzz/fuzz_cmdline.c): FUZZ_INC += -Icmd
$(BUILD)/fuzz/fuzz_http_conn $(BUILD)/fuzz/fuzz_tcp_services: \
	FUZZ_LDFLAGS = $(foreach s,$(FAKESOCK_SYMS),-Wl,--wrap=$(s))
$(BUILD)/fuzz/fuzz_%:
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@ $(FUZZ_LDFLAGS)

fuzz:
	@$(MAKE) --no-print-directory $(foreach f,$(FUZZERS),$(BUILD)/fuzz/fuzz_$(firstword $(subst :, ,$(f))))
	@set -e; for pair in $(FUZZERS); do \
		f=$${pair%%:*}; c=$${pair#*:}; scratch=$(BUILD)/fuzz/corpus-$$c; \
		rm -rf $$scratch; mkdir -p $$scratch; cp fuzz/corpus/$$c/* $$scratch/; \
		dict=fuzz/$$c.dict; [ -f $$dict ] || dict=fuzz/http.dict; \
		regs=fuzz/regressions/$$c; [ -d $$regs ] || regs=; \
		echo "== fuzz_$$f for $(FUZZ_SECONDS) s"; \
		$(BUILD)/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -dict=$$dict \
			-artifact_prefix=$(BUILD)/fuzz/ -print_final_stats=1 $$scratch $$regs; \
	done

# What CI runs: every fuzz target for 60 s.
.PHONY: fuzz-ci
fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=60

# Benchmarks: bench/run.sh runs every script in bench/ (bounded; BENCH_SECONDS
# per measurement, 5 by default) and writes docs/benchmarks.md with its plots.
# The C baselines it compares eddy with are built in $(BUILD)/bench.
.PHONY: bench
BENCH_BIN := $(BUILD)/bench/floor $(BUILD)/bench/pollfloor

$(BUILD)/bench/%: bench/%.c bench/floor.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@

bench: $(BUILD)/eddy $(BUILD)/eddy-load $(BENCH_BIN)
	BENCH_NO_BUILD=1 bench/run.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)
