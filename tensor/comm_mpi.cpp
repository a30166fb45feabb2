// The MPI communicator (see tensor/comm.h): MPI_COMM_WORLD, host buffers, MPI_Allreduce in place.
// Compiled when CMake finds MPI (NORMAD_MPI=AUTO or ON); otherwise this file is empty.
// Tested by tests/mpi/comm_check.cpp under `mpirun -np 2` (ctest mpi_comm).
#if NORMAD_HAS_MPI
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>

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
