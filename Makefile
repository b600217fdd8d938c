# smarty-gateway
#
#   make            build the nginx module, the emulator and the client
#   make test       build everything and run the whole suite (prove over t/)
#   make run        start Redis, the emulator and nginx+gateway on loopback
#   make stop       stop exactly what `make run` started
#   make asan-test  the suite against an ASan+UBSan build of everything ours
#   make valgrind-test  the suite with nginx and the emulator under valgrind
#   make fuzz       run every fuzz target (FUZZ_SECONDS each)
#   make bench      benchmarks (see bench/README.md)
#   make deps       install the Debian packages the project needs
#   make deb        the Debian packages (libnginx-mod-http-smarty, smarty-client)
#   make deb-test   install them into this machine's nginx, test, purge them

SHELL       := /bin/bash
BUILD       ?= build
NGX_SRC     ?= /usr/share/nginx/src
CC          ?= cc
SAN         ?=

WARN        := -Wall -Wextra -Wno-unused-parameter -Wpointer-arith
OPT         ?= -O2 -g
CFLAGS_ALL  := $(OPT) $(WARN) -D_GNU_SOURCE -Isrc $(SAN) $(CFLAGS)
LDFLAGS_ALL := $(SAN) $(LDFLAGS)

MODULE      := $(BUILD)/ngx_http_smarty_module.so
EMULATOR    := $(BUILD)/smarty-emulator
CLIENT      := $(BUILD)/smarty

# the Debian packages: build, run, test, bench, fuzz
DEB_PKGS    := build-essential nginx nginx-dev libhiredis-dev libjansson-dev \
               libssl-dev libcurl4-openssl-dev libmicrohttpd-dev \
               redis-server redis-sentinel perl wrk linux-perf clang libclang-rt-14-dev valgrind \
               docker-compose openssl curl ca-certificates \
               debhelper dpkg-dev lintian prometheus chromium libjs-chart.js \
               libnginx-mod-stream

CORE_SRCS   := src/smarty_errors.c src/smarty_args.c src/smarty_multipart.c src/smarty_meta.c src/smarty_cache.c src/smarty_quota.c src/smarty_oauth.c src/smarty_cluster.c \
               src/smarty_client_token.c \
               src/smarty_ring.c src/smarty_audit.c src/smarty_metrics.c
CORE_HDRS   := $(wildcard src/smarty_*.h)
MODULE_SRCS := $(wildcard src/*.c) $(wildcard src/*.h) config

EMU_SRCS    := $(wildcard emulator/*.c)
EMU_HDRS    := $(wildcard emulator/*.h)
CLIENT_SRCS := $(wildcard client/*.c)
CLIENT_HDRS := $(wildcard client/*.h)

UNIT_SRCS   := $(wildcard t/unit/test_*.c)
UNIT_BINS   := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))

.PHONY: all module emulator client unit test deps run stop asan asan-test \
        valgrind-test fuzz bench bench-module clean compose-secrets deb deb-test

all: module emulator client unit

module: $(MODULE)
emulator: $(EMULATOR)
client: $(CLIENT)
unit: $(UNIT_BINS) $(BUILD)/unit/quota_driver

# --- the nginx module, against Debian's nginx-dev SDK -----------------------
#
# A private copy of the SDK tree is configured with the distro's own flags
# (so the .so loads into /usr/sbin/nginx) plus --with-compat.

NGX_CC_OPT  := -g -O2 -fstack-protector-strong -Wformat \
               -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2 $(SAN)
NGX_LD_OPT  := -Wl,-z,relro -Wl,-z,now -fPIC $(SAN)

$(BUILD)/nginx/objs/Makefile: config
	@test -d $(NGX_SRC) || { echo "nginx-dev is missing: make deps"; exit 1; }
	rm -rf $(BUILD)/nginx && mkdir -p $(BUILD) && cp -r $(NGX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && source ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" --with-compat \
	        --with-cc-opt="$(NGX_CC_OPT)" --with-ld-opt="$(NGX_LD_OPT)" \
	        --add-dynamic-module=$(CURDIR) > configure.log 2>&1 || \
	    { tail -30 configure.log; exit 1; }

# the Redis Lua scripts as C (config generates them too, at configure time)
LUA_C       := $(BUILD)/nginx/objs/ngx_http_smarty_redis_lua.c

$(LUA_C): $(BUILD)/nginx/objs/Makefile src/lua $(wildcard src/lua/*.lua) \
          $(wildcard src/lua/lib/*.lua) scripts/embed-lua.sh
	scripts/embed-lua.sh src/lua $@

$(MODULE): $(BUILD)/nginx/objs/Makefile $(MODULE_SRCS) $(LUA_C)
	$(MAKE) -C $(BUILD)/nginx -f objs/Makefile modules
	@# a new file, renamed over the old: an nginx running the old .so keeps
	@# its mapping intact (cp would rewrite it in place, under its workers)
	cp $(BUILD)/nginx/objs/ngx_http_smarty_module.so $@.tmp
	mv -f $@.tmp $@

# --- the emulator and the client ---------------------------------------------

$(EMULATOR): $(EMU_SRCS) $(EMU_HDRS)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS_ALL) -Iemulator -o $@ $(EMU_SRCS) $(LDFLAGS_ALL) \
	    -lmicrohttpd -ljansson -lcrypto -lpthread -lm

$(CLIENT): $(CLIENT_SRCS) $(CLIENT_HDRS) src/smarty_meta.c src/smarty_meta.h
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS_ALL) -Iclient -o $@ $(CLIENT_SRCS) src/smarty_meta.c \
	    src/smarty_errors.c $(LDFLAGS_ALL) -lcurl -ljansson -lcrypto

# --- C unit tests (TAP) of the pure cores ------------------------------------

$(BUILD)/unit/%: t/unit/%.c $(CORE_SRCS) $(CORE_HDRS) t/unit/tap.h
	@mkdir -p $(BUILD)/unit
	$(CC) $(CFLAGS_ALL) -It/unit -o $@ $< $(CORE_SRCS) $(LDFLAGS_ALL) \
	    -ljansson -lcrypto -lcurl

# --- tests -------------------------------------------------------------------

PROVE       ?= prove
PROVE_FLAGS ?=

test: deps all bench-module
	SMARTY_BUILD=$(abspath $(BUILD)) $(PROVE) $(PROVE_FLAGS) -r t/

deps:
	@scripts/deps.sh $(DEB_PKGS)

# everything ours with AddressSanitizer and UndefinedBehaviorSanitizer; nginx
# itself is the distro's, so libasan is preloaded into it by the harness
asan:
	$(MAKE) BUILD=build-asan \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" OPT="-O1 -g" all

asan-test: asan
	SMARTY_BUILD=$(abspath build-asan) SMARTY_ASAN=1 \
	    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(PROVE) $(PROVE_FLAGS) -r t/

valgrind-test: all
	SMARTY_BUILD=$(abspath $(BUILD)) SMARTY_VALGRIND=1 \
	    $(PROVE) $(PROVE_FLAGS) -r t/

FUZZ_SECONDS ?= 30
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))

fuzz:
	@mkdir -p $(BUILD)/fuzz
	@set -o pipefail; for t in $(FUZZ_TARGETS); do \
	    clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
	        -o $(BUILD)/fuzz/$$t fuzz/$$t.c $(CORE_SRCS) -ljansson -lcrypto -lcurl \
	        || exit 1; \
	    mkdir -p $(BUILD)/fuzz/corpus-$$t; \
	    echo "== $$t ($(FUZZ_SECONDS)s)"; \
	    $(BUILD)/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) \
	        -artifact_prefix=$(BUILD)/fuzz/ \
	        $(BUILD)/fuzz/corpus-$$t fuzz/corpus/$$t 2>&1 | tail -3 || exit 1; \
	done

# --- the stack on loopback ---------------------------------------------------

run: deps all
	@scripts/stack.sh start

stop:
	@scripts/stack.sh stop

# the secrets docker-compose.yml mounts: .run/oauth-client-id,
# .run/oauth-client-secret, .run/clients.json, .run/oauth-issuer.key
compose-secrets: client
	@scripts/stack.sh secrets

bench: all bench-module
	@bench/run.sh

# the benchmark's hash bound (bench/hashbound/): a module of its own, built
# in a tree of its own, never part of the gateway's .so
BENCH_MODULE := $(BUILD)/ngx_http_smarty_hashbound_module.so

bench-module: $(BENCH_MODULE)

$(BUILD)/nginx-bench/objs/Makefile: bench/hashbound/config
	@test -d $(NGX_SRC) || { echo "nginx-dev is missing: make deps"; exit 1; }
	rm -rf $(BUILD)/nginx-bench && mkdir -p $(BUILD) && \
	    cp -r $(NGX_SRC) $(BUILD)/nginx-bench
	cd $(BUILD)/nginx-bench && source ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" --with-compat \
	        --with-cc-opt="$(NGX_CC_OPT)" --with-ld-opt="$(NGX_LD_OPT)" \
	        --add-dynamic-module=$(CURDIR)/bench/hashbound \
	        > configure.log 2>&1 || { tail -30 configure.log; exit 1; }

$(BENCH_MODULE): $(BUILD)/nginx-bench/objs/Makefile \
                 bench/hashbound/ngx_http_smarty_hashbound_module.c
	$(MAKE) -C $(BUILD)/nginx-bench -f objs/Makefile modules
	cp $(BUILD)/nginx-bench/objs/ngx_http_smarty_hashbound_module.so $@.tmp
	mv -f $@.tmp $@

# --- Debian packages -----------------------------------------------------------
#
# dpkg-buildpackage in a copy of the sources (the files git knows, as they
# are in the working tree, and new ones it does not ignore), so that nothing
# of $(BUILD) nor of an earlier package build gets in; debian/rules builds
# with `make BUILD=debian/build module client`.  The packages, .buildinfo,
# .changes and build log land in $(DEB_DIR); lintian checks them
# (debian/*.lintian-overrides say why a tag is left).

DEB_DIR     ?= $(BUILD)/deb

# (the version is read when the recipe runs: dpkg-dev may come with deps)
deb: deps
	rm -rf $(DEB_DIR)
	set -o pipefail; \
	v=$$(dpkg-parsechangelog -S Version | sed 's/-[^-]*$$//') && \
	src=$(DEB_DIR)/smarty-gateway-$$v && mkdir -p $$src && \
	git ls-files -z --cached --others --exclude-standard \
	    | tar --null --ignore-failed-read -T - -cf - | tar -C $$src -xf - && \
	cd $$src && { dpkg-buildpackage -b -us -uc > ../build.log 2>&1 \
	    || { tail -40 ../build.log; exit 1; }; }
	lintian -I --fail-on error,warning $(DEB_DIR)/*.changes
	@ls -1 $(DEB_DIR)/*.deb

# as root: installs the packages into this machine's nginx, runs the
# walkthrough through it against the emulator, purges them and checks that
# the machine is as it was (scripts/deb-test.sh)
SUDO        := $(if $(filter 0,$(shell id -u)),,sudo)

deb-test: deb emulator
	$(SUDO) env SMARTY_BUILD=$(abspath $(BUILD)) \
	    scripts/deb-test.sh $(abspath $(DEB_DIR))

clean:
	rm -rf $(BUILD) build-asan
