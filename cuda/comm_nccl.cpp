// The NCCL communicator (tensor/comm.h, gpu_world()): the ranks of the MPI world, each on its GPU
// (device 0 of the rank: give each rank its own with CUDA_VISIBLE_DEVICES, as Slurm's
// --gpus-per-task=1 does), collectives on DEVICE buffers on normad's stream (cuda/device.h), waited
// for before returning so they look synchronous like the host ones. Bootstrap as llm.c's multi-GPU
// set-up: rank 0 makes the NCCL unique id and MPI broadcasts it, then ncclCommInitRank. NCCL is
// opened on first use (dlopen of libnccl.so.2, like cuBLAS in cuda/cublas.cpp): a process that
// never asks for it does not load it.
// Math: all_reduce_sum(x) = sum_r x_r in every rank's device buffer (ncclAllReduce, in place);
// all_gather of uneven parts = one ncclBroadcast per rank inside a group.
// Compiled when CUDA, MPI and nccl.h are found (NORMAD_HAS_NCCL). NOT yet run: no machine here has
// two GPUs (or one; issue 13). tests/test_cuda.cpp only checks that asking for it without a GPU
// is a clear error.
#if NORMAD_HAS_NCCL
#include <dlfcn.h>
#include <nccl.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cuda/device.h"
#include "tensor/comm.h"
#include "tensor/tensor.h"

#ifndef NORMAD_NCCL_SONAME
#define NORMAD_NCCL_SONAME "libnccl.so.2"
#endif
#ifndef NORMAD_NCCL_DIR
#define NORMAD_NCCL_DIR "/usr/local/cuda/lib64"
#endif

namespace normad {

namespace {

// The NCCL entry points normad uses, resolved from the library on first use.
struct NcclApi {
  decltype(&ncclGetUniqueId) get_unique_id;
  decltype(&ncclCommInitRank) comm_init_rank;
  decltype(&ncclAllReduce) all_reduce;
  decltype(&ncclBroadcast) broadcast;
  decltype(&ncclGroupStart) group_start;
  decltype(&ncclGroupEnd) group_end;
  decltype(&ncclCommAbort) comm_abort;
  decltype(&ncclGetErrorString) error_string;
};

const NcclApi& nccl_api() {
  static const NcclApi api = [] {
    void* lib = dlopen(NORMAD_NCCL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen(NORMAD_NCCL_DIR "/" NORMAD_NCCL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      throw Error(std::string("cannot open NCCL (") + NORMAD_NCCL_SONAME + "): " + dlerror() +
                  " (set LD_LIBRARY_PATH to the folder of libnccl.so.2)");
    NcclApi a{};
    auto resolve = [lib](const char* symbol, auto& fn) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, symbol));
      if (!fn) throw Error(std::string("NCCL (") + NORMAD_NCCL_SONAME + ") has no entry point " + symbol);
    };
    resolve("ncclGetUniqueId", a.get_unique_id);
    resolve("ncclCommInitRank", a.comm_init_rank);
    resolve("ncclAllReduce", a.all_reduce);
    resolve("ncclBroadcast", a.broadcast);
    resolve("ncclGroupStart", a.group_start);
    resolve("ncclGroupEnd", a.group_end);
    resolve("ncclCommAbort", a.comm_abort);
    resolve("ncclGetErrorString", a.error_string);
    return a;
  }();
  return api;
}

void nccl_check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string("NCCL ") + what + ": " + nccl_api().error_string(r));
}

// Collectives take device pointers only: a host buffer here is a caller's bug, not a crash later.
void require_device(const void* p, const char* what) {
  cudaPointerAttributes at{};
  const bool device = cudaPointerGetAttributes(&at, p) == cudaSuccess && at.type == cudaMemoryTypeDevice;
  cudaGetLastError();
  check(device, what, "NCCL needs a device buffer (this one is in host memory): use world() for host buffers");
}

class Nccl : public Communicator {
 public:
  explicit Nccl(Communicator& host) : host_(host) {
    check(host.name() == "mpi", "gpu_world", "NCCL ranks are bootstrapped by MPI: start normad with mpirun or srun");
    cuda::stream();  // the GPU (device 0 of this rank), or an Error saying why not
    ncclUniqueId id{};
    if (host.rank() == 0) nccl_check(nccl_api().get_unique_id(&id), "ncclGetUniqueId");
    host.broadcast(&id, sizeof id, 0);
    const ncclResult_t r = nccl_api().comm_init_rank(&comm_, host.size(), id, host.rank());
    if (r != ncclSuccess)
      throw Error(std::string("NCCL ncclCommInitRank: ") + nccl_api().error_string(r) +
                  " (each rank uses its device 0: give every rank its own GPU with CUDA_VISIBLE_DEVICES, as Slurm's "
                  "--gpus-per-task=1 does)");
  }
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  std::string name() const override { return "nccl"; }
  bool device_buffers() const override { return true; }
  void all_reduce_sum(float* data, int64_t n) override { reduce(data, n, ncclFloat32); }
  void all_reduce_sum(double* data, int64_t n) override { reduce(data, n, ncclFloat64); }
  void all_gather(float* data, const std::vector<int64_t>& counts) override { gather(data, counts, ncclFloat32, 4); }
  void all_gather(double* data, const std::vector<int64_t>& counts) override { gather(data, counts, ncclFloat64, 8); }
  void broadcast(void* data, int64_t bytes, int root) override {
    if (bytes == 0) return;
    require_device(data, "broadcast");
    nccl_check(nccl_api().broadcast(data, data, size_t(bytes), ncclUint8, root, comm_, cuda::stream()), "ncclBroadcast");
    cuda::synchronize();
  }
  [[noreturn]] void abort(const std::string& message, int code) override {
    nccl_api().comm_abort(comm_);  // no rank stays in a device collective
    host_.abort(message, code);
  }

 private:
  void reduce(void* data, int64_t n, ncclDataType_t type) {
    if (n == 0) return;
    require_device(data, "all_reduce_sum");
    nccl_check(nccl_api().all_reduce(data, data, size_t(n), type, ncclSum, comm_, cuda::stream()), "ncclAllReduce");
    cuda::synchronize();
  }
  void gather(void* data, const std::vector<int64_t>& counts, ncclDataType_t type, size_t width) {
    check(int(counts.size()) == size(), "all_gather", std::to_string(counts.size()) + " counts for " + std::to_string(size()) + " ranks");
    require_device(data, "all_gather");
    char* base = static_cast<char*>(data);
    nccl_check(nccl_api().group_start(), "ncclGroupStart");
    size_t at = 0;
    for (int r = 0; r < size(); ++r) {  // each rank broadcasts its part in place
      if (counts[size_t(r)] > 0)
        nccl_check(nccl_api().broadcast(base + at * width, base + at * width, size_t(counts[size_t(r)]), type, r, comm_,
                                        cuda::stream()),
                   "ncclBroadcast");
      at += size_t(counts[size_t(r)]);
    }
    nccl_check(nccl_api().group_end(), "ncclGroupEnd");
    cuda::synchronize();
  }
  Communicator& host_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

Communicator& nccl_world() {
  static Nccl nccl(world());
  return nccl;
}

}  // namespace normad
#endif
