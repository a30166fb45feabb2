// The single-process communicator and the choice of world() (see tensor/comm.h); the MPI one is
// tensor/comm_mpi.cpp. Tested by tests/test_comm.cpp and tests/mpi/comm_check.cpp.
#include "tensor/comm.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tensor/tensor.h"

namespace normad {

#if NORMAD_HAS_MPI
Communicator& mpi_world();  // tensor/comm_mpi.cpp
#endif
#if NORMAD_HAS_NCCL
Communicator& nccl_world();  // cuda/comm_nccl.cpp
#endif

namespace {

class SingleProcess : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single"; }
  void all_reduce_sum(float*, int64_t) override {}  // the sum over one rank is the buffer itself
  void all_reduce_sum(double*, int64_t) override {}
  void all_gather(float*, const std::vector<int64_t>& counts) override { check_counts(counts); }
  void all_gather(double*, const std::vector<int64_t>& counts) override { check_counts(counts); }
  void broadcast(void*, int64_t, int root) override {
    check(root == 0, "broadcast", "root " + std::to_string(root) + " in a single process");
  }
  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "normad: %s\n", message.c_str());
    std::exit(code);
  }

 private:
  static void check_counts(const std::vector<int64_t>& counts) {
    check(counts.size() == 1 && counts[0] >= 0, "all_gather", std::to_string(counts.size()) + " counts in a single process");
  }
};

}  // namespace

std::pair<int64_t, int64_t> rank_share(int64_t n, int rank, int ranks) {
  check(n >= 0 && ranks >= 1 && rank >= 0 && rank < ranks, "rank_share",
        "rank " + std::to_string(rank) + " of " + std::to_string(ranks) + ", " + std::to_string(n) + " items");
  return {n * rank / ranks, n * (rank + 1) / ranks};
}

bool launched_by_mpi() {
  // The launcher's own size, most specific first; one rank (mpirun -np 1, srun -n 1) is a process
  // alone, which needs neither MPI nor a build with it.
  auto env = [](const char* v) -> const char* {
    const char* s = std::getenv(v);
    return s && *s ? s : nullptr;
  };
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* s = env(v)) return std::strcmp(s, "1") != 0;
  if (!env("PMIX_RANK")) return false;
  // PMIx gives no size variable; srun's step (SLURM_STEP_NUM_TASKS) does.
  const char* step = env("SLURM_STEP_NUM_TASKS");
  return !(step && std::strcmp(step, "1") == 0);
}

bool built_with_mpi() {
#if NORMAD_HAS_MPI
  return true;
#else
  return false;
#endif
}

Communicator& world() {
  if (launched_by_mpi()) {
#if NORMAD_HAS_MPI
    return mpi_world();
#else
    throw Error("started by an MPI launcher, but this normad was built without MPI (install libopenmpi-dev and "
                "configure with NORMAD_MPI=ON); every rank would run the whole job alone");
#endif
  }
  return single_process();
}

bool built_with_nccl() {
#if NORMAD_HAS_NCCL
  return true;
#else
  return false;
#endif
}

Communicator& gpu_world() {
#if NORMAD_HAS_NCCL
  return nccl_world();
#else
  throw Error("this normad was built without NCCL (it needs CUDA, MPI and nccl.h at configure time)");
#endif
}

Communicator& single_process() {
  static SingleProcess single;
  return single;
}

}  // namespace normad
