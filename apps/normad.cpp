// normad: the command line. Subcommands so far: `zeroshot` (FMNIST-ZS, fmnist_zs.md).
// Errors print one line and exit with code 2; output files are written to a temporary name and
// renamed, so nothing is left half-written.
// Tested by tests/test_cli.cpp (error cases, exit codes) and by `make demo`.
#include <CLI/CLI.hpp>
#include <json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/idx.h"
#include "models/omniglot_net.h"
#include "models/zeroshot.h"
#include "tensor/parallel.h"

using namespace normad;

namespace {

// Writes `text` to path via path.tmp + rename.
void write_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
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

// Training progress: a redrawn bar on a terminal, plain periodic lines otherwise.
struct Progress {
  std::string label;
  bool tty = isatty(fileno(stderr));
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now(), last = t0;
  void operator()(int64_t done, int64_t total, double loss) {
    auto now = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(now - t0).count();
    const bool final = done == total;
    if (!final && std::chrono::duration<double>(now - last).count() < (tty ? 0.2 : 10.0)) return;
    last = now;
    const double rate = done / std::max(secs, 1e-9), eta = (total - done) / std::max(rate, 1e-9);
    if (tty) {
      const int width = 30, fill = static_cast<int>(width * done / std::max<int64_t>(total, 1));
      std::fprintf(stderr, "\r%s [%.*s%*s] %lld/%lld  %.2f it/s  loss %.4f  ETA %.0fs ", label.c_str(), fill,
                   "##############################", width - fill, "", (long long)done, (long long)total,
                   rate, loss, eta);
      if (final) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "%s %lld/%lld  %.2f it/s  loss %.4f  ETA %.0fs\n", label.c_str(), (long long)done,
                   (long long)total, rate, loss, eta);
    }
  }
};

std::vector<double> parse_ratios(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      double r = std::stod(item, &used);
      if (used != item.size() || !(r > 0 && r < 1)) throw std::invalid_argument("");
      out.push_back(r);
    } catch (const std::exception&) {
      throw Error("--ratios: '" + item + "' is not a ratio in (0, 1)");
    }
  }
  if (out.empty()) throw Error("--ratios: no ratio given");
  return out;
}

int run_zeroshot(const std::string& data, const std::string& dir, const std::string& fold_arg,
                 const std::string& model, models::ZsConfig cfg, const std::string& ratios,
                 const std::string& json_path) {
  if (data != "fmnist") throw Error("--data: unknown data set '" + data + "' (available: fmnist)");
  if (model != "dsvdd") throw Error("--model: '" + model + "' is not available for --data fmnist (use dsvdd)");
  std::vector<char> folds;
  if (fold_arg == "A" || fold_arg == "B") folds = {fold_arg[0]};
  else if (fold_arg == "both") folds = {'A', 'B'};
  else throw Error("--fold: '" + fold_arg + "' is not A, B or both");
  cfg.ratios = parse_ratios(ratios);
  data::Mnist m = data::load_mnist_dir(dir);

  std::printf("FMNIST-ZS (fmnist_zs.md): ACR-DSVDD, Omniglot net, %lld iterations, %lld tasks x %lld, seed %llu, %d threads\n",
              (long long)cfg.iters, (long long)cfg.tasks, (long long)(cfg.normals + cfg.anomalies),
              (unsigned long long)cfg.seed, num_threads());
  std::vector<models::ZsFold> results;
  for (char f : folds) {
    cfg.fold = f;
    Progress p{std::string("fold ") + f};
    auto omniglot = [](Generator& init) { return std::make_shared<models::OmniglotNet>(init); };
    results.push_back(models::run_zeroshot(models::fmnist_fold(m, f), cfg, omniglot, std::ref(p)));
  }
  // Table: mean (std) over the 25 batches of each (fold, ratio); then the fold means.
  std::printf("\n%-5s %-5s %5s  %-15s %-15s %-15s %-15s\n", "fold", "r", "n_a", "ACR", "stationary", "batch-mean L2", "kNN-5");
  auto cell = [](double m, double s) { char b[32]; std::snprintf(b, sizeof b, "%.3f (%.3f)", m, s); return std::string(b); };
  for (auto& fr : results)
    for (auto& r : fr.ratios)
      std::printf("%-5c %-5.2f %5lld  %-15s %-15s %-15s %-15s\n", fr.fold, r.ratio, (long long)r.n_anom,
                  cell(r.acr, r.acr_std).c_str(), cell(r.stationary, r.stationary_std).c_str(),
                  cell(r.batch_l2, r.batch_l2_std).c_str(), cell(r.knn, r.knn_std).c_str());
  nlohmann::json js;
  js["protocol"] = "FMNIST-ZS";
  js["seed"] = cfg.seed;
  js["iters"] = cfg.iters;
  js["ratios"] = nlohmann::json::array();
  for (size_t i = 0; i < cfg.ratios.size(); ++i) {
    double a = 0, s = 0, l = 0, k = 0;
    for (auto& fr : results) a += fr.ratios[i].acr, s += fr.ratios[i].stationary, l += fr.ratios[i].batch_l2, k += fr.ratios[i].knn;
    const double n = double(results.size());
    if (results.size() > 1)
      std::printf("%-5s %-5.2f %5lld  %-15.3f %-15.3f %-15.3f %-15.3f\n", "mean", cfg.ratios[i],
                  (long long)results[0].ratios[i].n_anom, a / n, s / n, l / n, k / n);
    js["ratios"].push_back({{"ratio", cfg.ratios[i]}, {"acr", a / n}, {"stationary", s / n}, {"batch_l2", l / n}, {"knn", k / n}});
  }
  for (auto& fr : results) {
    std::printf("fold %c: %.3f s per iteration\n", fr.fold, fr.secs_per_iter);
    nlohmann::json jf{{"fold", std::string(1, fr.fold)}, {"secs_per_iter", fr.secs_per_iter}};
    for (auto& b : fr.batches)
      jf["batches"].push_back({{"test_class", b.test_class}, {"batch", b.index}, {"ratio", b.ratio}, {"acr", b.acr},
                               {"stationary", b.stationary}, {"batch_l2", b.batch_l2}, {"knn", b.knn}});
    js["folds"].push_back(jf);
  }
  if (!json_path.empty()) write_atomic(json_path, js.dump(2) + "\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"normad: deep anomaly detection (ACR zero-shot, Deep SVDD, NTL, Gaussian-AD)"};
  app.require_subcommand(1);
  uint64_t seed = 0;
  int threads = 0;
  std::string json_path;
  auto common = [&](CLI::App* sub) {
    sub->add_option("--seed", seed, "random seed")->capture_default_str();
    sub->add_option("--threads", threads, "threads (0: all cores)")->capture_default_str();
    sub->add_option("--json", json_path, "also write machine-readable results to FILE");
  };

  auto* zs = app.add_subcommand("zeroshot", "zero-shot detection benchmark (FMNIST-ZS): ACR vs baselines");
  common(zs);
  std::string data = "fmnist", dir = data::kFashionMnistDir, fold = "both", model = "dsvdd", ratios = "0.01,0.05,0.1,0.2";
  models::ZsConfig cfg;
  zs->add_option("--data", data, "data set: fmnist")->capture_default_str();
  zs->add_option("--data-dir", dir, "directory with the Fashion-MNIST IDX files")->capture_default_str();
  zs->add_option("--fold", fold, "A, B or both")->capture_default_str();
  zs->add_option("--model", model, "dsvdd")->capture_default_str();
  zs->add_option("--iters", cfg.iters, "meta-training iterations")->capture_default_str();
  zs->add_option("--ratios", ratios, "anomaly ratios, comma-separated")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    set_num_threads(threads);
    cfg.seed = seed;
    if (cfg.iters < 0) throw Error("--iters: must be >= 0");
    if (*zs) return run_zeroshot(data, dir, fold, model, cfg, ratios, json_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "normad: %s\n", e.what());
    return 2;
  }
  return 0;
}
