// Helpers shared by normad's subcommands (see cli_util.h).
#include "apps/cli_util.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tensor/backend.h"
#include "tensor/comm.h"
#include "tensor/tensor.h"

namespace normad::cli {

Device& compute_device() {
  static Device d = Device::CPU;
  return d;
}

void select_device(const std::string& name, bool tf32) {
  Device d;
  try {
    d = parse_device(name);
  } catch (const Error& e) {
    throw Error(std::string("--device: ") + e.what());
  }
  if (!device_available(d))
    throw Error("--device " + name + ": no usable GPU here (" + device_unavailable_reason(d) + "); use --device cpu");
  if (tf32 && d != Device::CUDA) throw Error("--tf32: TF32 matrix products exist on --device cuda only");
  set_allow_tf32(tf32);
  compute_device() = d;
}

void check_paths(const std::vector<PathArg>& inputs, const std::vector<PathArg>& outputs) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const PathArg& out = outputs[i];
    const std::string where = out.option + " " + out.path;
    if (fs::is_directory(out.path, ec)) throw Error(where + ": is a directory; give a file name");
    const fs::path parent = fs::path(out.path).parent_path();
    const fs::path dir = parent.empty() ? fs::path(".") : parent;
    if (!fs::is_directory(dir, ec)) throw Error(where + ": directory " + dir.string() + " does not exist");
    // A probe file in the directory: permissions, read-only file systems and root's exceptions
    // (which access(2) does not see) all answer the same way as the real write will.
    const fs::path probe = dir / (".normad-probe-" + std::to_string(getpid()));
    {
      std::ofstream f(probe, std::ios::binary);
      if (!f) throw Error(where + ": cannot write in directory " + dir.string());
    }
    fs::remove(probe, ec);
    // The same file as an input, or as another output: compare device and inode (fs::equivalent
    // follows symlinks and sees hard links) when both exist, else the normalised paths.
    auto same = [&](const std::string& a, const std::string& b) {
      std::error_code e1;
      if (fs::exists(a, e1) && fs::exists(b, e1)) return fs::equivalent(a, b, e1);
      return fs::weakly_canonical(fs::absolute(a), e1) == fs::weakly_canonical(fs::absolute(b), e1);
    };
    for (const PathArg& in : inputs)
      if (fs::exists(out.path, ec) && fs::exists(in.path, ec) && fs::equivalent(out.path, in.path, ec))
        throw Error(where + ": is the same file as " + in.option + " " + in.path +
                    " (it would be overwritten); write the output elsewhere");
    for (size_t j = 0; j < i; ++j)
      if (same(outputs[j].path, out.path))
        throw Error(outputs[j].option + " and " + out.option + " both name " + out.path + "; give each output its own file");
  }
}

bool writes_outputs() { return !launched_by_mpi() || world().rank() == 0; }

void outputs_barrier() {
  if (!launched_by_mpi()) return;
  double ready = 1;
  world().all_reduce_sum(&ready, 1);  // returns once every rank is here; a failed rank aborted the job
}

Communicator* gradient_ranks(Device device) {
  if (device == Device::CPU || !launched_by_mpi() || world().size() == 1 || !built_with_nccl()) return nullptr;
  return &gpu_world();
}

void write_atomic(const std::string& path, const std::string& text) {
  if (!writes_outputs()) return;
  const std::string tmp = path + ".tmp" + std::to_string(getpid());  // concurrent runs never collide
  {
    std::ofstream f(tmp);
    if (!f) throw Error(path + ": cannot write");
    f << text;
    if (!f.flush()) throw Error(path + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error(path + ": cannot write (" + ec.message() + ")");
  }
}

nlohmann::json memory_report() {
  nlohmann::json js;
  for (Device d : {Device::CPU, Device::Reference, Device::CUDA}) {
    if (!device_available(d)) continue;
    const MemoryStats m = allocator_for(d).stats();
    if (m.allocations == 0) continue;  // a device the run never used
    js[device_name(d)] = {{"tensor_bytes_in_use", m.in_use}, {"tensor_bytes_peak", m.peak},
                          {"cached_bytes", m.cached}, {"allocations", m.allocations}};
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  js["process_peak_rss_bytes"] = static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux: KiB
  return js;
}

nlohmann::json with_run_info(nlohmann::json js) {
  js["memory"] = memory_report();
  js["device"] = device_name(compute_device());
  js["tf32"] = allow_tf32();
  return js;
}

std::string json_text(const nlohmann::json& js) {
  return js.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void write_json(const std::string& path, nlohmann::json js) { write_atomic(path, json_text(with_run_info(std::move(js)))); }

Progress::Progress(std::string l, bool loss)
    : label(std::move(l)), show_loss(loss), tty(isatty(fileno(stderr))),
      t0(std::chrono::steady_clock::now()), last(t0) {}

void Progress::operator()(int64_t done, int64_t total, double loss) {
  if (!writes_outputs()) return;
  auto now = std::chrono::steady_clock::now();
  const double secs = std::chrono::duration<double>(now - t0).count();
  const bool final = done == total;
  if (!final && std::chrono::duration<double>(now - last).count() < (tty ? 0.2 : 10.0)) return;
  last = now;
  const double rate = done / std::max(secs, 1e-9), eta = (total - done) / std::max(rate, 1e-9);
  char tail[64] = "";
  if (show_loss) std::snprintf(tail, sizeof tail, "  loss %.4f", loss);
  if (tty) {
    const int width = 30, fill = static_cast<int>(width * done / std::max<int64_t>(total, 1));
    std::fprintf(stderr, "\r%s [%.*s%*s] %lld/%lld  %.2f it/s%s  ETA %.0fs ", label.c_str(), fill,
                 "##############################", width - fill, "", (long long)done, (long long)total, rate,
                 tail, eta);
    if (final) std::fprintf(stderr, "\n");
  } else {
    std::fprintf(stderr, "%s %lld/%lld  %.2f it/s%s  ETA %.0fs\n", label.c_str(), (long long)done,
                 (long long)total, rate, tail, eta);
  }
}

}  // namespace normad::cli
