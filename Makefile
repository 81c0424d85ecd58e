# Thin driver over CMake + CTest. The README's two commands are `make demo`
# and `make test`; both install the Debian packages they need first.
BUILD   ?= build
ASAN    ?= build-asan
TSAN    ?= build-tsan
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps deps-test build test test-asan test-tsan demo install format format-check fuzz bench bench-fuse bench-redis bench-peers bench-python swarm clean

all: build

# What building and the demo need; deps-test adds what the tests need.
deps:
	@sh scripts/deps.sh

deps-test:
	@sh scripts/deps.sh test

# Configured every time (a second or so): optional parts (the mount, the
# Redis tier) are switched on by what is installed now, and `make test`
# installs more than `make demo` did into the same build directory.
build:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Every test; ends with "N passed, N failed, N skipped" and fails on any failure.
test: deps-test
	@$(MAKE) --no-print-directory build
	@sh scripts/run-tests.sh $(BUILD)

# The same suite built with AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps-test
	cmake -S . -B $(ASAN) -DLARDER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)
	cmake --build $(ASAN) -j $(JOBS)
	@sh scripts/run-tests.sh $(ASAN)

# The threaded parts (the lease heartbeat, the memo shared by threads,
# per-thread error messages) under ThreadSanitizer.
test-tsan: deps
	cmake -S . -B $(TSAN) -DLARDER_TSAN=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)
	cmake --build $(TSAN) -j $(JOBS) --target test_fill test_memo test_api
	$(TSAN)/tests/test_fill
	$(TSAN)/tests/test_memo
	$(TSAN)/tests/test_api

demo: deps
	@$(MAKE) --no-print-directory build >/dev/null
	@sh scripts/demo.sh $(BUILD)

install: build
	cmake --install $(BUILD)

SOURCES = include/*.h src/*.[ch] src/*/*.[ch] cli/*.[ch] cli/*/*.[ch] tests/*.[ch] bench/*.[ch] fuzz/*.c tools/*.c \
          examples/*.c python/src/*.[ch]

format:
	clang-format -i $(SOURCES)

# Fails if any file differs from what clang-format would make of it.
format-check:
	clang-format --dry-run -Werror $(SOURCES)

fuzz: deps
	@sh scripts/fuzz.sh

bench: build
	$(BUILD)/bench/bench_hit

# A warm hit beside LMDB, SQLite, Redis, memcached, diskcache and joblib
# (docs/performance.md, "Beside the peers"); installs them from Debian
# first. PEERS_ARGS=--quick: a smoke run in seconds.
PEERS_ARGS ?=
# `larder mount` against the entry file (docs/performance.md); needs
# /dev/fuse and about 1.5 GB in $TMPDIR.
bench-fuse: build
	sh bench/fuse.sh $(BUILD)

# The Redis tier against bare GET and SET on a private Redis, in one run
# (docs/performance.md, "Redis tier"); REDIS_BENCH_ARGS=--quick for a
# short one.
bench-redis: build
	sh bench/redis_bench.sh $(BUILD) $(REDIS_BENCH_ARGS)

bench-peers:
	@sh scripts/deps.sh bench
	cmake -S . -B $(BUILD) -DLARDER_BENCH_PEERS=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS) --target bench_peers
	sh bench/peers/run.sh $(PEERS_ARGS) $(BUILD)

# The Python binding beside diskcache and joblib (docs/performance.md,
# "Python"): warm hits, a 100 MB numpy array, a cold herd of 8 processes.
# PYBENCH_ARGS=--quick: a smoke run in seconds.
PYBENCH_ARGS ?=
bench-python: build
	sh bench/python/run.sh $(PYBENCH_ARGS) $(BUILD)

# The large swarm (docs/swarm.md): 16 clients x 50 waves
# x 20 generations, file then SQL; SWARM_ARGS adds or overrides options.
SWARM_ARGS ?=
swarm: build
	$(BUILD)/tools/larder-swarm --variant file --clients 16 --waves 50 --generations 20 $(SWARM_ARGS)
	$(BUILD)/tools/larder-swarm --variant sql --clients 16 --waves 50 --generations 20 $(SWARM_ARGS)

clean:
	rm -rf $(BUILD) $(ASAN) $(TSAN) build-fuzz
