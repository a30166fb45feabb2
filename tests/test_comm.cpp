// Tests of tensor/comm.h in a single process (tests/mpi/comm_check.cpp covers MPI under mpirun):
// world() is the single-process communicator when no launcher started us, its all-reduce and
// broadcast leave buffers as they are, and launcher variables without MPI built in are an error.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <vector>

#include "tensor/comm.h"
#include "tensor/tensor.h"

using namespace normad;

TEST_CASE("comm: a process no launcher started is rank 0 of 1 and its collectives are the identity", "[comm]") {
  if (launched_by_mpi()) return;  // (ctest never starts this binary under mpirun)
  Communicator& c = world();
  CHECK(c.name() == "single");
  CHECK(c.rank() == 0);
  CHECK(c.size() == 1);
  std::vector<float> f{1.5f, -2.f};
  std::vector<double> d{3.25};
  c.all_reduce_sum(f.data(), 2);
  c.all_reduce_sum(d.data(), 1);
  CHECK(f == std::vector<float>{1.5f, -2.f});
  CHECK(d == std::vector<double>{3.25});
  int v = 7;
  c.broadcast(&v, sizeof v, 0);
  CHECK(v == 7);
  CHECK_THROWS_WITH(c.broadcast(&v, sizeof v, 1), Catch::Contains("root 1"));
}

TEST_CASE("comm: launcher variables are recognised, and without MPI built in they are an error", "[comm]") {
  if (launched_by_mpi()) return;
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  CHECK(launched_by_mpi());
  if (!built_with_mpi()) CHECK_THROWS_WITH(world(), Catch::Contains("built without MPI"));
  // One rank (srun -n 1, mpirun -np 1) is a process alone: no MPI, no error without it.
  setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
  CHECK_FALSE(launched_by_mpi());
  CHECK(world().name() == "single");
  unsetenv("OMPI_COMM_WORLD_SIZE");
  setenv("SLURM_STEP_NUM_TASKS", "1", 1);  // an sbatch of 1 task whose mpirun starts 4: 4 ranks
  setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  CHECK(launched_by_mpi());
  unsetenv("OMPI_COMM_WORLD_SIZE");
  setenv("PMIX_RANK", "0", 1);  // srun -n 1 with PMIx
  CHECK_FALSE(launched_by_mpi());
  unsetenv("SLURM_STEP_NUM_TASKS");
  CHECK(launched_by_mpi());  // PMIx without a size: a rank of an MPI job
  unsetenv("PMIX_RANK");
  CHECK_FALSE(launched_by_mpi());
  CHECK(world().name() == "single");
}

TEST_CASE("comm: the NCCL communicator outside an MPI job is a clear error", "[comm]") {
  if (launched_by_mpi()) return;
  if (!built_with_nccl()) {
    CHECK_THROWS_WITH(gpu_world(), Catch::Contains("built without NCCL"));
    return;
  }
  // NCCL's ranks are bootstrapped through MPI: a lone process is told so (before any GPU is asked for).
  CHECK_THROWS_WITH(gpu_world(), Catch::Contains("bootstrapped by MPI"));
  CHECK_THROWS_WITH(gpu_world(), Catch::Contains("mpirun"));  // asked again: the same answer, no crash
}
