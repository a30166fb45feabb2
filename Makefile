# normad: the two commands a new user runs. Both install missing Debian packages, configure and build.
#   make demo   - the main job (for now: a two-layer network trained on Fashion-MNIST)
#   make test   - the test suite (ctest)
#   make bench  - the benchmarks
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: deps configure build test demo bench clean

deps:
	bash scripts/deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	./$(BUILD)/normad_demo

bench: build
	./$(BUILD)/normad_bench --benchmark_counters_tabular=true

clean:
	rm -rf $(BUILD)
