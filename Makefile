# normad: the two commands a new user runs. Both install missing Debian packages, configure and build.
#   make demo   - the main job: zero-shot anomaly detection with ACR on Fashion-MNIST (FMNIST-ZS,
#                 fold A): the few-class recipe (task augmentation, its own 1000 iterations), then
#                 the paper's recipe for DEMO_ITERS iterations, beside the raw-pixel baselines
#                 (about 6 minutes on 2 cores after the build)
#   make test   - the test suite (ctest)
#   make bench  - the benchmarks
#   make sanitize - the test suite built with AddressSanitizer + UndefinedBehaviorSanitizer (CPU
#                 only, in build-sanitize; a report fails its test)
#   make sanitize-replay - only the library and the fuzz replay tests under the sanitizers (the
#                 subset that fits beside make test in CI)
#   make fuzz     - every libFuzzer target (tests/fuzz/) for FUZZ_SECONDS seconds each, built with
#                 clang, ASan and UBSan in build-fuzz; crashes land in build-fuzz/crashes/<target>/
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=
DEMO_ITERS ?= 300

.PHONY: deps configure build test demo bench sanitize sanitize-replay fuzz clean

deps:
	bash scripts/deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	./$(BUILD)/normad zeroshot --data fmnist --fold A --recipe few-class
	./$(BUILD)/normad zeroshot --data fmnist --fold A --iters $(DEMO_ITERS) --recipe paper

bench: build
	./$(BUILD)/normad_bench --benchmark_counters_tabular=true

# detect_leaks=0: oneTBB's and OpenBLAS's worker threads keep their own buffers to the end;
# normad's own allocators are reachable from statics, so leak reports would be noise.
# detect_stack_use_after_return stays off (ASan's default with GCC 12): with it on, the tests' copy
# of stb_image_write (stbi_write_bmp's varargs header writer) crashes reading address 0x799f in
# "image: PNG and BMP decode exactly"; not investigated further (2026-12-02).
SANITIZE_ENV = ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
sanitize: deps
	cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNORMAD_SANITIZE=ON \
	  -DNORMAD_CUDA=OFF $(CMAKE_ARGS)
	cmake --build build-sanitize -j $(JOBS)
	cd build-sanitize && $(SANITIZE_ENV) ctest --output-on-failure -j $(JOBS)

# The subset of `make sanitize` that fits beside `make test` in CI's time: the library and the fuzz
# replay programs under ASan + UBSan, run on every committed seed and regression input.
sanitize-replay: deps
	cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNORMAD_SANITIZE=ON \
	  -DNORMAD_CUDA=OFF $(CMAKE_ARGS)
	cmake --build build-sanitize -j $(JOBS) --target $(FUZZ_TARGETS)
	cd build-sanitize && $(SANITIZE_ENV) ctest --output-on-failure -j $(JOBS) -R _replay

FUZZ_SECONDS ?= 60
FUZZ_TARGETS = fuzz_csv fuzz_features_csv fuzz_idx fuzz_mat fuzz_image fuzz_safetensors fuzz_model
fuzz: deps
	CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNORMAD_FUZZ=ON -DNORMAD_CUDA=OFF \
	  $(CMAKE_ARGS)
	cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	bash scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) build-sanitize build-fuzz
