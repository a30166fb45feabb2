// normad CUDA reductions: the launchers of cuda/reduce.cuh (bodies, math and versions there) and
// the sum version switch.
// Versions: sum v1 one thread per output; sum v2 chunked double partials, then one thread per
// output; max, max_backward, logsumexp v1. The switch's threshold is a guess, not a measurement
// (no GPU has run these yet). Unmeasured candidate v3 for sum: one block per output with a
// fixed-shape shared-memory tree (still deterministic) and coalesced reads when inner == 1.
// Tested by tests/test_cuda.cpp ([cuda_body] on the host) and tests/test_backend_ops.cpp on a GPU.
#include "cuda/reduce.cuh"

#include "tensor/tensor.h"

namespace normad::cuda {

void launch(int64_t n, const SumBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const SumPartialBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const SumFinishBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const MaxBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const MaxBackwardBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const LogsumexpBody& body) { launch_for_each(n, body); }

int sum_default_version(int64_t outputs, int64_t r) {
  // v1 leaves the GPU idle when there are fewer outputs than a few thousand threads and each
  // thread walks a long R; v2 spreads R over kSumChunk-long pieces.
  return outputs < 16384 && r > 4 * kSumChunk ? 2 : 1;
}

void sum_dim(int version, float* out, const float* a, int64_t outer, int64_t r, int64_t inner) {
  const int64_t outputs = outer * inner;
  if (version == 0) version = sum_default_version(outputs, r);
  if (version == 1) {
    launch(outputs, SumBody{out, a, r, inner});
    return;
  }
  if (version != 2) throw Error("cuda sum: no version " + std::to_string(version) + " (1 or 2)");
  const int64_t chunks = (r + kSumChunk - 1) / kSumChunk;
  if (outputs == 0) return;
  if (chunks == 0) {  // R = 0: every sum is 0
    launch(outputs, SumBody{out, a, 0, inner});
    return;
  }
  Scratch partial(sizeof(double) * outputs * chunks);
  double* p = static_cast<double*>(partial.get());
  launch(outputs * chunks, SumPartialBody{p, a, r, inner, chunks});
  launch(outputs, SumFinishBody{out, p, chunks});
}

}  // namespace normad::cuda
