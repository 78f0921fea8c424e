# roomcast: `make run` and `make test` are the two commands a newcomer needs.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
PORT       ?= 8080
SCRIPT     ?= scripts/chat.lua
RC_WERROR  ?= OFF
FUZZ_SECONDS ?= 20
PREFIX     ?= /usr/local
DESTDIR    ?=
DEB_BUILD  ?= build-deb
CMAKE_ARGS ?=
CTEST      = ctest --output-on-failure --no-tests=error -j$(JOBS)

.PHONY: all build deps run install deb test-package test test-fast test-asan test-tsan test-fuzz bench-deps bench bench-quick bench-deflate bench-cluster format clean

all: build

deps:
	@bash .ci/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DRC_WERROR=$(RC_WERROR)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

run: deps build
	@if [ -f $(SCRIPT) ] && ./$(BUILD)/roomcast --help 2>&1 | grep -q -- '--script SCRIPT'; then \
	  exec ./$(BUILD)/roomcast -p $(PORT) -s $(SCRIPT) --history sqlite:var/roomcast.db --static www; \
	else exec ./$(BUILD)/roomcast -p $(PORT) --echo --static www; fi

# make install [PREFIX=/usr/local] [DESTDIR=/tmp/stage]: see README "Install".
install:
	cmake -S . -B $(BUILD) -DRC_WERROR=$(RC_WERROR) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j$(JOBS) --target roomcast
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

# make deb: $(DEB_BUILD)/roomcast_VERSION_ARCH.deb (CPack; cmake/install.cmake).
deb:
	cmake -S . -B $(DEB_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
	  -DRC_PACKAGE_DEB=ON -DRC_BUILD_TESTS=OFF -DRC_BENCH=OFF -DRC_WERROR=$(RC_WERROR)
	cmake --build $(DEB_BUILD) -j$(JOBS) --target roomcast
	cd $(DEB_BUILD) && cpack -G DEB
	@ls $(DEB_BUILD)/*.deb

# The package on this machine, as root (CI): install, serve, upgrade, remove
# (tests/package/deb_test.py; purges the package and its user afterwards).
test-package:
	/usr/bin/python3 tests/package/deb_test.py $(DEB_BUILD)

# Every suite: sanitizers and fuzzers first, the main build's ctest last so
# its summary closes the output.
test: deps
	$(MAKE) test-asan
	$(MAKE) test-tsan
	$(MAKE) test-fuzz
	$(MAKE) test-fast

test-fast:
	cmake -S . -B $(BUILD) -DRC_WERROR=$(RC_WERROR)
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && $(CTEST)

test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRC_BENCH=OFF \
	  -DRC_SANITIZE=address,undefined -DRC_WERROR=$(RC_WERROR)
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CTEST) -L 'unit|integration'

test-tsan:
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRC_BENCH=OFF \
	  -DRC_SANITIZE=thread -DRC_WERROR=$(RC_WERROR)
	cmake --build $(TSAN_BUILD) -j$(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $(CTEST) -L tsan

test-fuzz:
	@if command -v clang >/dev/null && ls tests/fuzz/fuzz_*.c >/dev/null 2>&1; then \
	  CC=clang cmake -S . -B $(FUZZ_BUILD) -DRC_FUZZ=ON -DRC_BUILD_TESTS=OFF -DRC_BENCH=OFF \
	    -DRC_FUZZ_SECONDS=$(FUZZ_SECONDS) && \
	  cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzzers && \
	  cd $(FUZZ_BUILD) && $(CTEST) -L fuzz; \
	else echo "test-fuzz: skipped (clang or fuzz targets missing)"; fi

# The benchmark's packages (Go, gorilla, libwebsockets, gnuplot, valgrind, npm
# ws) are installed before anything is configured or timed.
bench-deps:
	@bash tests/bench/deps.sh

bench: bench-deps
	@$(MAKE) --no-print-directory build
	@RC_BENCH_DEPS_DONE=1 bash tests/bench/run.sh full

bench-quick: bench-deps
	@$(MAKE) --no-print-directory build
	@RC_BENCH_DEPS_DONE=1 bash tests/bench/run.sh quick

bench-deflate: bench-deps
	@$(MAKE) --no-print-directory build
	@RC_BENCH_DEPS_DONE=1 bash tests/bench/run.sh deflate

# One room fanned out over NODES roomcast nodes and a redis-server, against the
# same room on one node without Redis (tests/bench/cluster.sh: real nodes,
# WebSocket members), then the bus alone, 1..NODES buses in one process
# (tests/bench/cluster_bus.sh, busbench). Parameters: NODES WORKERS MEMBERS
# RATE DURATION SIZE REPS MESSAGES, e.g. make bench-cluster NODES=4 MEMBERS=5000.
bench-cluster: build
	@bash tests/bench/cluster.sh --nodes $(or $(NODES),2) --workers $(or $(WORKERS),1) \
	  --members $(or $(MEMBERS),1000) --rate $(or $(RATE),100) --duration $(or $(DURATION),3) \
	  --size $(or $(SIZE),64) --reps $(or $(REPS),3)
	@bash tests/bench/cluster_bus.sh $(or $(NODES),2) $(or $(MESSAGES),20000)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) $(DEB_BUILD)
