// `normad oneclass`: Deep SVDD's one-class protocol (ntl_dsvdd.md A.5-A.7) on Fashion-MNIST.
// Math: per normal class, AUROC of ||phi(x) - c||^2 on the whole test set (the class normal, the
// nine others anomalies). Tested by tests/test_cli.cpp, tests/test_checkpoint.cpp and
// bench/results/*_dsvdd_oneclass_*.txt (the README's table).
#include <json.hpp>

#include <cstdio>

#include "apps/cli_commands.h"
#include "apps/cli_util.h"
#include "data/idx.h"
#include "data/image_norm.h"
#include "eval/metrics.h"
#include "models/deep_svdd.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

namespace normad::cli {

namespace {

// `normad oneclass`: Deep SVDD's one-class protocol (ntl_dsvdd.md A.6) on Fashion-MNIST with
// FashionMNIST_LeNet: per normal class, train on its training images (autoencoder pretraining, A.5,
// then Deep SVDD, A.7), score the whole test set (that class normal, the nine others anomalies).
// Each class is seeded on its own (init from `seed`, shuffling from seed + 1), so a class run alone
// gives the numbers it gives inside a full run.
struct OneClassArgs {
  std::string dir = data::kFashionMnistDir, classes = "all", preprocess = "gcn";
  int64_t epochs = 150, ae_epochs = 150;
  bool pretrain = true;
  std::string checkpoint, resume;  // epoch checkpoints of one class's run (both phases)
  int64_t checkpoint_every = 0;
};

void oneclass_fmnist(const OneClassArgs& a, uint64_t seed, const std::string& json_path) {
  // Golan & El-Yaniv (NeurIPS 2018), Deep SVDD on Fashion-MNIST, as quoted in ntl_dsvdd.md A.8.
  static const double kReference[10] = {98.2, 90.3, 90.7, 94.2, 89.4, 91.8, 83.4, 98.8, 91.9, 99.0};
  static const char* kNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  if (a.preprocess != "gcn" && a.preprocess != "unit")
    throw Error("--preprocess: '" + a.preprocess + "' is not gcn (GCN-L1 + min-max, A.6) or unit ([0, 1] only)");
  std::vector<int64_t> classes;
  if (a.classes == "all") {
    for (int64_t k = 0; k < 10; ++k) classes.push_back(k);
  } else {
    for (auto& c : split_list(a.classes, "--classes")) {
      if (c.size() != 1 || c[0] < '0' || c[0] > '9') throw Error("--classes: '" + c + "' is not a class 0..9");
      classes.push_back(c[0] - '0');
    }
  }
  if ((!a.checkpoint.empty() || !a.resume.empty()) && classes.size() != 1)
    throw Error("--checkpoint / --resume: one class per run (--classes K)");
  // A resume in the Deep SVDD phase skips the finished pretraining: the checkpoint holds the
  // trained encoder, the centre and the generator as they were.
  std::string resume_phase;
  if (!a.resume.empty()) {
    const nn::Safetensors f = nn::load_safetensors(a.resume);
    resume_phase = f.has_meta("ckpt.run.phase") ? f.meta("ckpt.run.phase") : "";
    if (resume_phase != "autoencoder pretraining" && resume_phase != "Deep SVDD")
      throw Error(a.resume + ": not a checkpoint of oneclass (no autoencoder pretraining or Deep SVDD phase)");
  }
  data::Mnist m = data::load_mnist_dir(a.dir);
  std::printf("Deep SVDD one-class, Fashion-MNIST, FashionMNIST_LeNet; preprocessing %s; pretraining %s "
              "(%lld epochs); %lld epochs; seed %llu, %d threads, device %s\n",
              a.preprocess == "gcn" ? "GCN-L1 + min-max" : "[0, 1]", a.pretrain ? "on" : "off",
              (long long)(a.pretrain ? a.ae_epochs : 0), (long long)a.epochs, (unsigned long long)seed, num_threads(),
              device_name(compute_device()));
  nlohmann::json js{{"protocol", "ntl_dsvdd.md A.6, Fashion-MNIST"}, {"seed", seed}, {"epochs", a.epochs},
                    {"ae_epochs", a.pretrain ? a.ae_epochs : 0}, {"preprocess", a.preprocess}};
  js["classes"] = nlohmann::json::array();
  double total = 0, ref_total = 0;
  for (int64_t k : classes) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int64_t> rows;
    for (size_t i = 0; i < m.train_y.size(); ++i)
      if (m.train_y[i] == k) rows.push_back(int64_t(i));
    Tensor train = index_select(m.train_x, rows), test = m.test_x;
    if (a.preprocess == "gcn") {
      train = data::gcn_l1(train);
      data::MinMax mm = data::MinMax::fit(train);  // on the normal class's GCN'd training images
      train = mm.apply(train);
      test = mm.apply(data::gcn_l1(test));
    }
    manual_seed(seed);
    Generator g(seed + 1);
    auto ae = models::lenet_autoencoder("fmnist");
    ae->to(compute_device());  // initialised on the host, trained on --device
    double ae_loss = NAN;  // the last epoch's mean loss of each phase (NaN: not run in this process)
    // Checkpoints of both phases go to one file; each phase resumes only from its own.
    auto plan = [&](const std::string& phase) {
      return nn::CheckpointPlan{a.checkpoint, resume_phase == phase ? a.resume : "", a.checkpoint_every,
                                {{"command", "oneclass"}, {"class", std::to_string(k)}, {"seed", std::to_string(seed)},
                                 {"preprocess", a.preprocess}, {"pretrain", a.pretrain ? "on" : "off"}},
                                [&a, phase](int64_t done) {
                                  std::printf("resumed from %s in %s after epoch %lld\n", a.resume.c_str(),
                                              phase.c_str(), (long long)done);
                                }};
    };
    if (a.pretrain && resume_phase != "Deep SVDD") {
      models::SvddTrainConfig ac = models::ae_defaults("fmnist");
      ac.epochs = a.ae_epochs;
      ac.checkpoint = plan("autoencoder pretraining");
      Progress p{"class " + std::to_string(k) + " autoencoder"};
      ae_loss = models::pretrain_autoencoder(*ae, train, ac, g, std::ref(p)).back();
    }
    models::DeepSvdd svdd(ae->encoder);  // the pretrained encoder is the Deep SVDD network (A.5)
    models::SvddTrainConfig cfg;
    cfg.epochs = a.epochs;
    cfg.checkpoint = plan("Deep SVDD");
    Progress p{"class " + std::to_string(k) + " deep svdd"};
    const double svdd_loss = svdd.fit(train, cfg, g, std::ref(p)).back();
    std::vector<int> y;
    for (int64_t t : m.test_y) y.push_back(t == k ? 0 : 1);
    const double auc = eval::auroc(svdd.score(test), y);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("class %lld %-12s AUROC %.1f   reference %.1f   (%.0f s)\n", (long long)k, kNames[k], 100 * auc,
                kReference[k], secs);
    total += auc, ref_total += kReference[k];
    js["classes"].push_back({{"class", k}, {"name", kNames[k]}, {"auroc", auc}, {"reference", kReference[k] / 100},
                             {"secs", secs}, {"svdd_final_loss", svdd_loss}});
    if (!std::isnan(ae_loss)) js["classes"].back()["ae_final_loss"] = ae_loss;
  }
  const double n = double(classes.size());
  std::printf("mean over %zu classes: AUROC %.1f   reference %.1f\n", classes.size(), 100 * total / n, ref_total / n);
  js["mean_auroc"] = total / n;
  if (!json_path.empty()) write_json(json_path, js);
}
}  // namespace

Command add_oneclass(CLI::App& app, const AddCommon& add_common, const CommonOptions& common) {
  auto a = std::make_shared<OneClassArgs>();
  OneClassArgs& oa = *a;
  auto* oc = app.add_subcommand("oneclass", "Deep SVDD one-class per normal class on Fashion-MNIST (autoencoder pretraining, then Deep SVDD)");
  add_common(oc);
  oc->add_option("--data-dir", oa.dir, "directory with the Fashion-MNIST IDX files")->capture_default_str();
  oc->add_option("--classes", oa.classes, "normal classes 0..9, comma-separated, or all")->capture_default_str();
  oc->add_option("--epochs", oa.epochs, "Deep SVDD epochs")->capture_default_str();
  oc->add_option("--ae-epochs", oa.ae_epochs, "autoencoder pretraining epochs")->capture_default_str();
  oc->add_flag("!--no-pretrain", oa.pretrain, "skip autoencoder pretraining");
  oc->add_option("--preprocess", oa.preprocess, "gcn (GCN-L1 + min-max, A.6) or unit ([0, 1] only)")->capture_default_str();
  add_checkpoint_options(oc, oa.checkpoint, oa.checkpoint_every, oa.resume, "epochs",
                         "both phases, one class per run", "results");
  return {oc, [a, &common] {
            check_checkpoint_options(a->checkpoint, a->checkpoint_every, a->resume);
            if (a->epochs < 1 || a->ae_epochs < 1) throw Error("--epochs and --ae-epochs must be >= 1");
            oneclass_fmnist(*a, common.seed, common.json);
          }};
}

}  // namespace normad::cli
