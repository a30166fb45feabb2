// normad's communicator: what a multi-process job (mpirun, Slurm's srun) needs from its ranks —
// rank and size, an in-place all-reduce of host buffers, a broadcast, and an abort that ends every
// rank with one rank's message. Two implementations behind one interface: a single process (no
// launcher: every call is the identity) and MPI (Open MPI from Debian, built when found:
// NORMAD_MPI=AUTO|ON|OFF). NCCL (device buffers, cuda/comm_nccl.cpp: gpu_world()) behind the same
// interface, built with CUDA and MPI where nccl.h is found.
// Math: all_reduce_sum(x) leaves sum_r x_r in every rank's buffer (MPI_Allreduce, MPI_IN_PLACE).
// Tested by tests/test_comm.cpp (the single process) and tests/mpi/comm_check.cpp under
// `mpirun -np 2` (ctest mpi_comm, when MPI is built): sums, broadcast, rank and size.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace normad {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "single", "mpi" or "nccl"
  // Whether the collectives take device (GPU) buffers (NCCL) instead of host ones.
  virtual bool device_buffers() const { return false; }
  // Every rank's n values summed into every rank's `data` (host memory; device memory where
  // device_buffers()), in place.
  virtual void all_reduce_sum(float* data, int64_t n) = 0;
  virtual void all_reduce_sum(double* data, int64_t n) = 0;
  // In place: `data` holds counts[0] + ... + counts[R-1] values, this rank's counts[rank] of them
  // at offset counts[0] + ... + counts[rank-1]; afterwards every rank holds every rank's part
  // (MPI_Allgatherv). The counts must be the same on every rank.
  virtual void all_gather(float* data, const std::vector<int64_t>& counts) = 0;
  virtual void all_gather(double* data, const std::vector<int64_t>& counts) = 0;
  // `bytes` bytes of `root`'s buffer copied into every rank's.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  // Prints "normad (rank r of R): message" ("normad: message" in a single process) on stderr and ends the whole job with exit code `code`
  // (MPI_Abort: no rank waits forever for one that failed).
  [[noreturn]] virtual void abort(const std::string& message, int code) = 0;
};

// Rank `rank` of `ranks`' contiguous share of n items (tasks, images, rows): [n rank / ranks,
// n (rank + 1) / ranks). Shares differ by at most one item; a rank gets none when ranks > n.
std::pair<int64_t, int64_t> rank_share(int64_t n, int rank, int ranks);

// True when an MPI launcher started this process as one of several ranks: OMPI_COMM_WORLD_SIZE or
// PMI_SIZE above 1, or PMIX_RANK set unless Slurm's SLURM_STEP_NUM_TASKS says 1 (a single rank runs
// as a process alone, MPI or not).
bool launched_by_mpi();
// Whether this build has the MPI communicator.
bool built_with_mpi();

// The job's communicator: MPI's world when launched by an MPI launcher (MPI_Init on first use,
// MPI_Finalize at exit), otherwise a single process of rank 0 and size 1. Launched by MPI without
// MPI built in is an Error (every rank would otherwise run the whole job alone). MPI is initialised
// FUNNELED: the first call must come from the main thread, and only it calls collectives.
// A rank that fails must abort() (a rank that just exits leaves the others waiting in a collective).
Communicator& world();
// The ranks of world() with collectives on GPU buffers (NCCL; each rank on its device 0), for
// gradients that live on the GPU. An Error when this normad was built without NCCL, or MPI did not
// start the process (NCCL's ranks are bootstrapped through MPI).
Communicator& gpu_world();
bool built_with_nccl();

// The single-process communicator (rank 0 of 1, every call the identity), whatever launched us:
// what a model's config uses when it is given no communicator.
Communicator& single_process();

}  // namespace normad
