// The MPI communicator (see tensor/comm.h): MPI_COMM_WORLD, host buffers, MPI_Allreduce in place.
// Compiled when CMake finds MPI (NORMAD_MPI=AUTO or ON); otherwise this file is empty.
// Tested by tests/mpi/comm_check.cpp under `mpirun -np 2` (ctest mpi_comm).
#if NORMAD_HAS_MPI
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tensor/comm.h"
#include "tensor/tensor.h"

namespace normad {

namespace {

// Calls of more than INT_MAX elements are cut into pieces (MPI counts are int).
template <class T>
void all_reduce_chunks(T* data, int64_t n, MPI_Datatype type) {
  for (int64_t at = 0; at < n; at += INT_MAX) {
    const int count = int(std::min<int64_t>(INT_MAX, n - at));
    check(MPI_Allreduce(MPI_IN_PLACE, data + at, count, type, MPI_SUM, MPI_COMM_WORLD) == MPI_SUCCESS, "MPI_Allreduce",
          "failed");
  }
}

// MPI_Allgatherv in place; counts and displacements are int in MPI, so a larger gather is an Error.
template <class T>
void all_gather_parts(T* data, const std::vector<int64_t>& counts, int size, MPI_Datatype type) {
  check(static_cast<int>(counts.size()) == size, "all_gather",
        std::to_string(counts.size()) + " counts for " + std::to_string(size) + " ranks");
  std::vector<int> count(counts.size()), displacement(counts.size());
  int64_t at = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    check(counts[r] >= 0 && at + counts[r] <= INT_MAX, "all_gather",
          "more than " + std::to_string(INT_MAX) + " values in one gather (MPI counts are int)");
    count[r] = int(counts[r]), displacement[r] = int(at);
    at += counts[r];
  }
  check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, count.data(), displacement.data(), type,
                       MPI_COMM_WORLD) == MPI_SUCCESS,
        "MPI_Allgatherv", "failed");
}

class Mpi : public Communicator {
 public:
  Mpi() {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);  // oneTBB threads never call MPI
      std::atexit([] {
        int done = 0;
        MPI_Finalized(&done);
        if (!done) MPI_Finalize();
      });
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }
  void all_reduce_sum(float* data, int64_t n) override { all_reduce_chunks(data, n, MPI_FLOAT); }
  void all_reduce_sum(double* data, int64_t n) override { all_reduce_chunks(data, n, MPI_DOUBLE); }
  void all_gather(float* data, const std::vector<int64_t>& counts) override {
    all_gather_parts(data, counts, size_, MPI_FLOAT);
  }
  void all_gather(double* data, const std::vector<int64_t>& counts) override {
    all_gather_parts(data, counts, size_, MPI_DOUBLE);
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    check(root >= 0 && root < size_, "broadcast", "root " + std::to_string(root) + " of " + std::to_string(size_) + " ranks");
    auto* p = static_cast<char*>(data);
    for (int64_t at = 0; at < bytes; at += INT_MAX)
      check(MPI_Bcast(p + at, int(std::min<int64_t>(INT_MAX, bytes - at)), MPI_BYTE, root, MPI_COMM_WORLD) == MPI_SUCCESS,
            "MPI_Bcast", "failed");
  }
  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "normad (rank %d of %d): %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
  }

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace

Communicator& mpi_world() {
  static Mpi mpi;
  return mpi;
}

}  // namespace normad
#endif
