# flashgate: `make` builds bin/flashgate and bin/flashload; `make test` runs
# every test (it calls scripts/setup.sh first); `make demo` replays a local
# sale end to end. See README.md.

CC      ?= cc
PKGS    := liburing hiredis rdkafka inih jemalloc libcrypto
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
# Error messages are truncated on purpose when a name is very long.
WARN    += -Wno-format-truncation
CFLAGS  ?= -O2 -g -fno-omit-frame-pointer
CFLAGS  += -std=gnu11 $(WARN) -D_GNU_SOURCE -MMD -MP
LDLIBS  += -lpthread -lm
BUILD   ?= build
BIN     ?= bin

# Sanitizer build: `make asan` (objects and binaries in build/asan, bin/asan).
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
BUILD   := build/asan
BIN     := bin/asan
# jemalloc and ASan both replace malloc; ASan must win.
JEMALLOC :=
else
JEMALLOC := $(shell pkg-config --libs jemalloc 2>/dev/null)
endif

DEP_CFLAGS := $(shell pkg-config --cflags liburing hiredis rdkafka inih libcrypto jansson 2>/dev/null)
DEP_LIBS   := $(shell pkg-config --libs liburing hiredis rdkafka inih libcrypto 2>/dev/null)
# flashload's alone: `flashload merge` reads JSON reports.
JANSSON    := $(shell pkg-config --libs jansson 2>/dev/null)

CORE_SRC    := core/fmt.c core/http.c core/order.c core/oid.c core/cfg.c core/hist.c core/tscan.c core/bucket.c core/rcl.c \
               core/stockcsv.c core/kprops.c core/jwt.c core/netaddr.c core/proxyproto.c
GATEWAY_SRC := gateway/main.c gateway/worker.c gateway/conn.c gateway/flow.c \
               gateway/resv.c gateway/kpub.c gateway/script.c gateway/stock.c \
               gateway/reconcile.c gateway/skucache.c gateway/admin.c gateway/rebal.c gateway/rlink.c gateway/metrics.c \
               gateway/autorec.c gateway/rcmd.c gateway/logline.c gateway/rlookup.c \
               gateway/auth.c gateway/admission.c gateway/health.c gateway/kwatch.c gateway/lease.c gateway/notify.c gateway/access.c gateway/bgthread.c
LOADGEN_SRC := loadgen/main.c loadgen/run.c loadgen/verify.c loadgen/resp.c \
               loadgen/profile.c loadgen/sched.c loadgen/mix.c loadgen/series.c \
               loadgen/report.c loadgen/html.c loadgen/capacity.c \
               loadgen/engine.c loadgen/jobs.c loadgen/tokens.c \
               loadgen/result.c loadgen/threshold.c loadgen/merge.c loadgen/trace.c loadgen/record.c
LG_UNIT_TESTS := tests/unit/test_sched tests/unit/test_profile tests/unit/test_mix tests/unit/test_jobs \
                 tests/unit/test_threshold tests/unit/test_trace
UNIT_TESTS  := tests/unit/test_http tests/unit/test_order tests/unit/test_cfg \
               tests/unit/test_oid tests/unit/test_fmt tests/unit/test_hist tests/unit/test_bucket tests/unit/test_rcl \
               tests/unit/test_metrics tests/unit/test_stockcsv tests/unit/test_kprops tests/unit/test_jwt tests/unit/test_netaddr tests/unit/test_proxyproto tests/unit/test_logline tests/unit/test_health tests/unit/test_script $(LG_UNIT_TESTS)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

.PHONY: FORCE install all asan test test-unit test-asan test-faults test-faults-cluster demo soak setup clean fuzz fuzz-run fuzz-replay
all: $(BIN)/flashgate $(BIN)/flashload

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEP_CFLAGS) -c $< -o $@

# The commit both programs report (core/version.h). The file is rewritten
# only when the commit changes, so an unchanged tree relinks nothing.
GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell \
	git rev-parse HEAD >/dev/null 2>&1 && ! git diff --quiet HEAD -- 2>/dev/null && echo -dirty)
$(BUILD)/commit.c: FORCE
	@mkdir -p $(BUILD)
	@printf 'const char flashgate_commit[] = "%s";\n' '$(GIT_COMMIT)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
$(BUILD)/commit.o: $(BUILD)/commit.c
	$(CC) $(CFLAGS) -c $< -o $@
FORCE:

$(BIN)/flashgate: $(call obj,$(GATEWAY_SRC) $(CORE_SRC)) $(BUILD)/commit.o
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ -o $@ $(DEP_LIBS) $(JEMALLOC) $(LDLIBS)

$(BIN)/flashload: $(call obj,$(LOADGEN_SRC) $(CORE_SRC)) $(BUILD)/commit.o
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ -o $@ $(DEP_LIBS) $(JANSSON) $(JEMALLOC) $(LDLIBS)

$(BUILD)/tests/unit/%: tests/unit/%.c $(call obj,$(CORE_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEP_CFLAGS) $(LDFLAGS) $^ -o $@ -lcmocka $(DEP_LIBS) $(JANSSON) $(LDLIBS)

# flashload's pure modules, for its unit tests.
$(addprefix $(BUILD)/,$(LG_UNIT_TESTS)): \
	$(call obj,loadgen/profile.c loadgen/sched.c loadgen/mix.c loadgen/resp.c loadgen/jobs.c \
	           loadgen/series.c loadgen/result.c loadgen/threshold.c loadgen/trace.c)

# The gateway's modules without I/O policy that its unit tests link.
$(BUILD)/tests/unit/test_metrics: $(call obj,gateway/metrics.c)
$(BUILD)/tests/unit/test_logline: $(call obj,gateway/logline.c)
$(BUILD)/tests/unit/test_health: $(call obj,gateway/health.c)
$(BUILD)/tests/unit/test_script: $(call obj,gateway/script.c)

# What a token costs to sign and to verify (scripts/bench-identity.sh).
$(BUILD)/bench/jwt_cost: tests/bench/jwt_cost.c $(call obj,$(CORE_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEP_CFLAGS) $(LDFLAGS) $(filter %.c %.o,$^) -o $@ $(DEP_LIBS) $(LDLIBS)

# LD_PRELOAD shim for the io_uring-unavailable test (fault injection only).
$(BUILD)/tests/shim/no_uring.so: tests/shim/no_uring.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -shared -fPIC $< -o $@

all: $(BUILD)/tests/shim/no_uring.so

asan:
	$(MAKE) SAN=1 all $(addprefix build/asan/,$(UNIT_TESTS))

setup:
	scripts/setup.sh

test-unit: $(addprefix $(BUILD)/,$(UNIT_TESTS)) fuzz-replay
	scripts/run-unit-tests.sh $(addprefix $(BUILD)/,$(UNIT_TESTS))

# Every fuzz target's seed corpus (and every crash saved into it), replayed
# through tests/fuzz/replay.c with the ordinary compiler: what libFuzzer
# once found stays fixed without clang on the machine.
FUZZ_NAMES := http order resp cfg profile stockcsv kprops jwt merge trace
REPLAYS    := $(addprefix $(BUILD)/fuzz-replay/fuzz_,$(FUZZ_NAMES))
$(BUILD)/fuzz-replay/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c \
		$(call obj,$(CORE_SRC) loadgen/profile.c loadgen/resp.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-prototypes $(DEP_CFLAGS) $(LDFLAGS) $(filter %.c %.o,$^) -o $@ $(DEP_LIBS) $(JANSSON) $(LDLIBS)
$(BUILD)/fuzz-replay/fuzz_merge: $(call obj,loadgen/merge.c loadgen/result.c loadgen/series.c loadgen/mix.c)
$(BUILD)/fuzz-replay/fuzz_trace: $(call obj,loadgen/trace.c)
fuzz-replay: $(REPLAYS)
	@for n in $(FUZZ_NAMES); do \
		out=$$($(BUILD)/fuzz-replay/fuzz_$$n tests/fuzz/corpus/$$n 2>&1) || \
			{ printf '%s\n' "$$out" | tail -20; echo "fuzz_$$n: FAILED on the input named above"; exit 1; }; \
		echo "fuzz_$$n: $$(printf '%s\n' "$$out" | tail -1)"; \
	done

# The README's test command: installs what is missing, builds, runs the
# unit tests, then the integration tests against real Redis and Kafka.
test: setup
	$(MAKE) all
	$(MAKE) test-unit
	scripts/run-integration-tests.sh
	scripts/run-fault-tests.sh
	scripts/run-kafka-cluster-faults.sh
	$(MAKE) test-asan

# The same tests against the AddressSanitizer + UBSan build.
test-asan: asan
	$(MAKE) SAN=1 fuzz-replay
	scripts/run-unit-tests.sh $(addprefix build/asan/,$(UNIT_TESTS))
	FG_BIN=bin/asan scripts/run-integration-tests.sh
	FG_BIN=bin/asan scripts/run-fault-tests.sh

# Broker and Redis outages, gateway crashes and reconcile (about 1.5 min;
# also part of `make test`).
test-faults: setup
	$(MAKE) all
	scripts/run-fault-tests.sh

# The same promise on a three-broker Kafka cluster (replication factor 3,
# min.insync.replicas 2): leaders killed and hung, the in-sync set shrunk,
# the controller killed, a rolling restart (about 2.5 min; also part of
# `make test`, with the release build).
test-faults-cluster: setup
	$(MAKE) all
	scripts/run-kafka-cluster-faults.sh

demo: setup
	$(MAKE) all
	scripts/demo.sh

# A 10-minute steady sale watching the gateway's memory and queues (not
# part of `make test`); see scripts/soak.sh.
soak: setup
	$(MAKE) all
	scripts/soak.sh

# libFuzzer targets for every parser of untrusted input (needs clang:
# `scripts/setup.sh --fuzz`). `make fuzz-run` runs each for FUZZ_SECONDS.
FUZZ_TARGETS := build/fuzz/fuzz_http build/fuzz/fuzz_order build/fuzz/fuzz_resp build/fuzz/fuzz_cfg \
                build/fuzz/fuzz_profile build/fuzz/fuzz_stockcsv build/fuzz/fuzz_kprops build/fuzz/fuzz_jwt \
                build/fuzz/fuzz_merge build/fuzz/fuzz_trace
FUZZ_SECONDS ?= 60
fuzz: $(FUZZ_TARGETS)
build/fuzz/fuzz_http: tests/fuzz/fuzz_http.c core/http.c
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $^ -o $@
build/fuzz/fuzz_order: tests/fuzz/fuzz_order.c core/order.c core/oid.c core/fmt.c
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $^ -o $@
build/fuzz/fuzz_resp: tests/fuzz/fuzz_resp.c loadgen/resp.c
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $^ -o $@
build/fuzz/fuzz_cfg: tests/fuzz/fuzz_cfg.c core/cfg.c core/kprops.c core/netaddr.c
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $^ -linih -lrdkafka -o $@
build/fuzz/fuzz_profile: tests/fuzz/fuzz_profile.c loadgen/profile.c core/cfg.c core/kprops.c core/netaddr.c core/order.c core/oid.c \
		core/fmt.c
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $^ -linih -lrdkafka -lm -o $@
build/fuzz/fuzz_stockcsv: tests/fuzz/fuzz_stockcsv.c core/stockcsv.c core/order.c core/oid.c core/fmt.c
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $^ -o $@
build/fuzz/fuzz_kprops: tests/fuzz/fuzz_kprops.c core/kprops.c
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $^ -lrdkafka -o $@
build/fuzz/fuzz_jwt: tests/fuzz/fuzz_jwt.c core/jwt.c core/netaddr.c core/proxyproto.c core/order.c core/oid.c core/fmt.c
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $^ -lcrypto -o $@
build/fuzz/fuzz_merge: tests/fuzz/fuzz_merge.c loadgen/merge.c loadgen/result.c loadgen/series.c loadgen/mix.c loadgen/resp.c \
		loadgen/profile.c core/hist.c core/cfg.c core/kprops.c core/netaddr.c core/order.c core/oid.c core/fmt.c
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $^ -ljansson -linih -lrdkafka -lm -o $@
build/fuzz/fuzz_trace: tests/fuzz/fuzz_trace.c loadgen/trace.c
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $^ -ljansson -o $@
fuzz-run: fuzz
	@mkdir -p build/fuzz/findings build/fuzz/corpus-http build/fuzz/corpus-order build/fuzz/corpus-resp \
		build/fuzz/corpus-cfg build/fuzz/corpus-profile build/fuzz/corpus-stockcsv build/fuzz/corpus-kprops \
		build/fuzz/corpus-jwt build/fuzz/corpus-merge build/fuzz/corpus-trace
	build/fuzz/fuzz_http -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/findings/ \
		build/fuzz/corpus-http tests/fuzz/corpus/http
	build/fuzz/fuzz_order -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/findings/ \
		build/fuzz/corpus-order tests/fuzz/corpus/order
	build/fuzz/fuzz_resp -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/findings/ \
		build/fuzz/corpus-resp tests/fuzz/corpus/resp
	build/fuzz/fuzz_cfg -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/findings/ \
		build/fuzz/corpus-cfg tests/fuzz/corpus/cfg
	build/fuzz/fuzz_profile -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/findings/ \
		build/fuzz/corpus-profile tests/fuzz/corpus/profile
	build/fuzz/fuzz_stockcsv -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/findings/ \
		build/fuzz/corpus-stockcsv tests/fuzz/corpus/stockcsv
	build/fuzz/fuzz_kprops -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/findings/ \
		build/fuzz/corpus-kprops tests/fuzz/corpus/kprops
	build/fuzz/fuzz_jwt -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/findings/ \
		build/fuzz/corpus-jwt tests/fuzz/corpus/jwt
	build/fuzz/fuzz_merge -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/findings/ \
		build/fuzz/corpus-merge tests/fuzz/corpus/merge
	build/fuzz/fuzz_trace -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/findings/ \
		build/fuzz/corpus-trace tests/fuzz/corpus/trace

# `make install PREFIX=/usr/local DESTDIR=...`: both programs, the config
# (its key directory pointed at the install's), flashload's profiles and
# trace, the man pages and the systemd unit. An existing config is left alone.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
DATADIR    ?= $(PREFIX)/share/flashgate
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
install: $(BIN)/flashgate $(BIN)/flashload
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/flashgate/keys $(DESTDIR)$(DATADIR)/profiles \
		$(DESTDIR)$(DATADIR)/traces $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(UNITDIR)
	install -m 755 $(BIN)/flashgate $(BIN)/flashload $(DESTDIR)$(BINDIR)/
	test -e $(DESTDIR)$(SYSCONFDIR)/flashgate/flashgate.conf || \
		sed 's|^keys = .run/keys/verify$$|keys = $(SYSCONFDIR)/flashgate/keys|' config/flashgate.conf \
		> $(DESTDIR)$(SYSCONFDIR)/flashgate/flashgate.conf
	install -m 644 config/profiles/*.ini $(DESTDIR)$(DATADIR)/profiles/
	install -m 644 config/traces/*.csv $(DESTDIR)$(DATADIR)/traces/
	install -m 644 docs/man/flashgate.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 docs/man/flashload.1 $(DESTDIR)$(MANDIR)/man1/
	sed 's|@BINDIR@|$(BINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' config/systemd/flashgate.service.in \
		> $(DESTDIR)$(UNITDIR)/flashgate.service
	chmod 644 $(DESTDIR)$(UNITDIR)/flashgate.service

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
