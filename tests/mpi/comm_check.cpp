// Run under `mpirun -np R` (ctest mpi_comm, R = 2): every rank checks the MPI communicator of
// tensor/comm.h — rank and size, all_reduce_sum of float and double buffers (in place, the sum of
// every rank's values in every rank), an all-gather of uneven parts, a broadcast from the last rank — and exits 0, or prints what
// differed and exits 1. With an argument R it also requires MPI and exactly R ranks (ctest passes
// 2); without one, launched alone, it checks the single-process communicator.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tensor/comm.h"

int main(int argc, char** argv) {
  normad::Communicator& c = normad::world();
  const int r = c.rank(), R = c.size();
  int bad = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) std::fprintf(stderr, "rank %d of %d: %s\n", r, R, what), ++bad;
  };
  expect(normad::launched_by_mpi() ? c.name() == "mpi" : c.name() == "single", "communicator kind");
  expect(r >= 0 && r < R, "rank in [0, size)");
  if (argc > 1) {
    expect(c.name() == "mpi", "an MPI communicator (started by mpirun?)");
    expect(R == std::atoi(argv[1]), "the rank count asked for");
  }
  // x_r[i] = (r + 1) * i + 0.5: sum_r = i * R (R + 1) / 2 + R / 2, exact in float for these sizes.
  std::vector<float> f(1000);
  std::vector<double> d(3);
  for (size_t i = 0; i < f.size(); ++i) f[i] = float((r + 1) * double(i) + 0.5);
  for (size_t i = 0; i < d.size(); ++i) d[i] = (r + 1) * 1e-3 * double(i + 1);
  c.all_reduce_sum(f.data(), int64_t(f.size()));
  c.all_reduce_sum(d.data(), int64_t(d.size()));
  for (size_t i = 0; i < f.size(); ++i)
    if (f[i] != float(double(i) * R * (R + 1) / 2 + 0.5 * R)) {
      expect(false, "float all-reduce sum");
      break;
    }
  for (size_t i = 0; i < d.size(); ++i)
    expect(std::abs(d[i] - 1e-3 * double(i + 1) * R * (R + 1) / 2) < 1e-15, "double all-reduce sum");
  std::vector<int> b(5, r);  // the last rank's values everywhere
  c.broadcast(b.data(), int64_t(b.size() * sizeof(int)), R - 1);
  for (int v : b) expect(v == R - 1, "broadcast from the last rank");
  // all_gather: rank q contributes q + 1 values (q + 1) * 10 + i; uneven parts, in place.
  std::vector<int64_t> counts;
  for (int q = 0; q < R; ++q) counts.push_back(q + 1);
  std::vector<float> gf(size_t(R * (R + 1) / 2), -1.f);
  std::vector<double> gd(gf.size(), -1.0);
  const size_t mine = size_t(r * (r + 1) / 2);
  for (int i = 0; i <= r; ++i) gf[mine + size_t(i)] = float((r + 1) * 10 + i), gd[mine + size_t(i)] = (r + 1) * 10.5 + i;
  c.all_gather(gf.data(), counts);
  c.all_gather(gd.data(), counts);
  for (int q = 0, at = 0; q < R; ++q)
    for (int i = 0; i <= q; ++i, ++at) {
      expect(gf[size_t(at)] == float((q + 1) * 10 + i), "float all_gather");
      expect(gd[size_t(at)] == (q + 1) * 10.5 + i, "double all_gather");
    }
  if (r == 0) std::printf("comm_check: %s communicator, %d ranks: %s\n", c.name().c_str(), R, bad ? "FAILED" : "ok");
  return bad ? 1 : 0;
}
