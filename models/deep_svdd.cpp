// Deep SVDD (see models/deep_svdd.h). Tested by tests/test_deep_svdd.cpp.
#include "models/deep_svdd.h"

#include <algorithm>
#include <cmath>

#include "nn/init.h"
#include "nn/optim.h"
#include "tensor/backend.h"
#include "tensor/parallel.h"

namespace normad::models {

namespace {

// A LeNet of [conv 5x5 (pad 2, no bias), BN2d (affine-free, eps 1e-4), lReLU, pool 2] blocks, then
// bias-free Linear layers with affine-free BN1d + lReLU between them (A.3, A.4).
class LeNet : public nn::Module {
 public:
  LeNet(int64_t in_ch, int64_t hw, const std::vector<int64_t>& convs, const std::vector<int64_t>& fcs,
        const std::string& bn2d_prefix) {
    int64_t ch = in_ch;
    for (size_t i = 0; i < convs.size(); ++i) {
      const std::string k = std::to_string(i + 1);
      convs_.push_back(register_module("conv" + k, std::make_shared<nn::Conv2d>(ch, convs[i], 5, 1, 2, false)));
      bns_.push_back(register_module(bn2d_prefix + k, std::make_shared<nn::BatchNorm2d>(convs[i], 1e-4f, 0.1f, false)));
      ch = convs[i];
      hw /= 2;
    }
    int64_t in = ch * hw * hw;
    for (size_t i = 0; i < fcs.size(); ++i) {
      const std::string k = std::to_string(i + 1);
      fcs_.push_back(register_module("fc" + k, std::make_shared<nn::Linear>(in, fcs[i], false)));
      if (i + 1 < fcs.size())
        bn1d_.push_back(register_module("bn1d" + k, std::make_shared<nn::BatchNorm1d>(fcs[i], 1e-4f, 0.1f, false)));
      in = fcs[i];
    }
  }
  Var forward(const Var& x) override {
    Var h = x;
    const Pool2dArgs pool{2, 2, 2, 2, 0, 0, false, true};
    for (size_t i = 0; i < convs_.size(); ++i) {  // one op a statement: temporaries die at each `;`
      h = (*convs_[i])(h);
      h = bns_[i]->forward_relu(h, 0.01f);  // BN + leaky ReLU, one fused op
      h = max_pool2d(h, pool);
    }
    h = flatten(h);  // (C, H, W) order
    for (size_t i = 0; i < fcs_.size(); ++i) {
      h = (*fcs_[i])(h);
      if (i + 1 < fcs_.size()) h = bn1d_[i]->forward_relu(h, 0.01f);
    }
    return h;
  }

 private:
  std::vector<std::shared_ptr<nn::Conv2d>> convs_;
  std::vector<std::shared_ptr<nn::BatchNorm>> bns_, bn1d_;
  std::vector<std::shared_ptr<nn::Linear>> fcs_;
};

// A.5's decoders: [Linear + BN1d] or the code BN, view as ch0 x 4 x 4, lReLU, then per transposed
// conv: (upsample x2 unless it is the CIFAR decoder's first), deconv 5x5 stride 1, and BN2d +
// lReLU except after the last, which is followed by a sigmoid.
struct Deconv {
  int64_t out, pad;
  std::string bn;  // BN2d name after this deconv ("" for the last)
};
class LeNetDecoder : public nn::Module {
 public:
  LeNetDecoder(int64_t p, int64_t fc_out, const std::string& fc_name, const std::string& bn1d_name,
               int64_t ch0, bool up_first, const std::vector<Deconv>& deconvs)
      : ch0_(ch0), up_first_(up_first) {
    int64_t code = p;
    if (fc_out > 0) fc_ = register_module(fc_name, std::make_shared<nn::Linear>(p, fc_out, false)), code = fc_out;
    if (!bn1d_name.empty()) bn1d_ = register_module(bn1d_name, std::make_shared<nn::BatchNorm1d>(code, 1e-4f, 0.1f, false));
    check(code == ch0 * 16, "LeNetDecoder", "code size must be ch0 * 4 * 4");
    int64_t ch = ch0;
    for (size_t i = 0; i < deconvs.size(); ++i) {
      deconvs_.push_back(register_module("deconv" + std::to_string(i + 1),
                                         std::make_shared<nn::ConvTranspose2d>(ch, deconvs[i].out, 5, 1, deconvs[i].pad, 0, false)));
      if (!deconvs[i].bn.empty())
        bns_.push_back(register_module(deconvs[i].bn, std::make_shared<nn::BatchNorm2d>(deconvs[i].out, 1e-4f, 0.1f, false)));
      ch = deconvs[i].out;
    }
  }
  Var forward(const Var& z) override {
    Var h = fc_ ? (*fc_)(z) : z;
    if (bn1d_) h = (*bn1d_)(h);
    h = leaky_relu(reshape(h, {h.size(0), ch0_, 4, 4}), 0.01f);
    for (size_t i = 0; i < deconvs_.size(); ++i) {
      if (i > 0 || up_first_) h = upsample_nearest2d(h, 2);
      h = (*deconvs_[i])(h);
      h = i < bns_.size() ? bns_[i]->forward_relu(h, 0.01f) : sigmoid(h);
    }
    return h;
  }

 private:
  int64_t ch0_;
  bool up_first_;
  std::shared_ptr<nn::Linear> fc_;
  std::shared_ptr<nn::BatchNorm> bn1d_;
  std::vector<std::shared_ptr<nn::ConvTranspose2d>> deconvs_;
  std::vector<std::shared_ptr<nn::BatchNorm>> bns_;
};

// One epoch loop shared by pretraining and Deep SVDD: shuffled batches of x, Adam (weight decay as
// L2 on the gradient) with MultiStepLR stepped once per epoch; `loss` maps a batch to its loss.
// `fixed`: tensors the loss reads that a checkpoint must carry too (Deep SVDD's centre c).
std::vector<double> train_epochs(const char* what, nn::Module& net, const Tensor& x, const SvddTrainConfig& cfg,
                                 Generator& g, const std::function<Var(const Tensor&)>& loss_of,
                                 const SvddProgress& progress,
                                 const std::vector<std::pair<std::string, Tensor>>& fixed = {}) {
  check(cfg.epochs >= 1 && cfg.batch >= 2, "Deep SVDD training", "needs epochs >= 1 and batch >= 2");
  nn::Adam opt(net.parameters(), cfg.lr, 0.9f, 0.999f, 1e-8f, cfg.weight_decay);
  nn::MultiStepLR sched(opt, cfg.milestones, 0.1f);
  const int64_t n = x.size(0);
  std::vector<double> losses;
  // Checkpoints: the network's state and `fixed`, Adam, the generator, the losses; the run is
  // identified by the phase, every training setting and a digest of the rows.
  const nn::CheckpointPlan& plan = cfg.checkpoint;
  auto training_state = [&] {
    nn::TrainingState ts{net.state_dict(), &opt, {{"shuffle", &g}}};
    for (const auto& f : fixed) ts.model.push_back(f);
    return ts;
  };
  std::map<std::string, std::string> run = plan.run;
  int64_t start = 0;
  if (plan.active()) {
    char hp[64];
    std::snprintf(hp, sizeof hp, "lr %.9g wd %.9g", double(cfg.lr), double(cfg.weight_decay));
    std::string milestones;
    for (int64_t m : cfg.milestones) milestones += (milestones.empty() ? "" : ",") + std::to_string(m);
    run.insert({{"phase", what}, {"epochs", std::to_string(cfg.epochs)}, {"batch", std::to_string(cfg.batch)},
                {"optimiser", hp}, {"milestones", milestones}, {"device", device_name(net.device())},
                {"threads", std::to_string(num_threads())}, {"gemm", cpu_gemm_engine()}, {"data", nn::digest({x})}});
  }
  if (!plan.resume.empty()) {
    std::map<std::string, std::string> extra;
    start = nn::load_checkpoint(plan.resume, training_state(), run, &extra);
    if (!extra.count("losses")) throw Error(plan.resume + ": not a checkpoint of " + what + " (no losses field)");
    losses = nn::split_doubles(extra.at("losses"), plan.resume + ": checkpoint field losses");
    check(int64_t(losses.size()) == start && start <= cfg.epochs, plan.resume, "checkpoint losses and epochs disagree");
    sched.set_last_epoch(start);  // MultiStepLR counts epochs
    if (plan.resumed) plan.resumed(start);
  }
  for (int64_t e = start; e < cfg.epochs; ++e) {
    net.train();
    auto order = g.permutation(n);
    double total = 0;
    int64_t batches = 0;
    for (int64_t s = 0; s < n; s += cfg.batch) {
      if (n - s == 1 && s > 0) break;  // BN needs more than one row
      std::vector<int64_t> idx(order.begin() + s, order.begin() + std::min(n, s + cfg.batch));
      Var loss = loss_of(index_select(x, idx).to(net.device()));  // the batch on the network's device
      const double v = loss.item();
      nn::check_loss(v, what, "epoch", e + 1);  // before the step: NaN never reaches the weights
      opt.zero_grad();
      loss.backward();
      opt.step();
      total += v, ++batches;
    }
    sched.step();  // epochs 1..50 at lr, then lr / 10 (A.7)
    losses.push_back(total / double(batches));
    if (progress) progress(e + 1, cfg.epochs, losses.back());
    if (plan.due(e + 1))
      nn::save_checkpoint(plan.file, training_state(), e + 1, run, {{"losses", nn::join_doubles(losses)}});
  }
  return losses;
}

}  // namespace

SvddTrainConfig ae_defaults(const std::string& name) {
  SvddTrainConfig c;
  if (name == "cifar10") {
    c.epochs = 350, c.milestones = {250};
  } else {
    check(name == "mnist" || name == "fmnist", "ae_defaults", "unknown network '" + name + "'");
    c.weight_decay = 0.5e-3f;
  }
  return c;
}

std::shared_ptr<nn::Module> lenet_decoder(const std::string& name) {
  if (name == "mnist")
    return std::make_shared<LeNetDecoder>(32, 0, "", "", 2, true, std::vector<Deconv>{{4, 2, "bn3"}, {8, 3, "bn4"}, {1, 2, ""}});
  if (name == "fmnist")
    return std::make_shared<LeNetDecoder>(64, 128, "fc3", "bn1d2", 8, true,
                                          std::vector<Deconv>{{32, 2, "bn2d3"}, {16, 3, "bn2d4"}, {1, 2, ""}});
  if (name == "cifar10")
    return std::make_shared<LeNetDecoder>(
        128, 0, "", "bn1d", 8, false,
        std::vector<Deconv>{{128, 2, "bn2d4"}, {64, 2, "bn2d5"}, {32, 2, "bn2d6"}, {3, 2, ""}});
  throw Error("lenet_decoder: unknown network '" + name + "' (mnist, fmnist, cifar10)");
}

Autoencoder::Autoencoder(std::shared_ptr<nn::Module> enc, std::shared_ptr<nn::Module> dec)
    : encoder(register_module("encoder", std::move(enc))), decoder(register_module("decoder", std::move(dec))) {}

Var Autoencoder::forward(const Var& x) { return (*decoder)((*encoder)(x)); }

std::shared_ptr<Autoencoder> lenet_autoencoder(const std::string& name) {
  auto ae = std::make_shared<Autoencoder>(lenet(name), lenet_decoder(name));
  if (name == "cifar10")
    for (auto& [pname, p] : ae->named_parameters())
      if (p.dim() == 4) nn::init::xavier_uniform_(p.data(), std::sqrt(2.f / (1.f + 0.01f * 0.01f)));
  return ae;
}

Var reconstruction_loss(const Var& recon, const Var& x) {
  check(recon.shape() == x.shape(), "reconstruction_loss",
        "reconstruction " + shape_str(recon.shape()) + " vs input " + shape_str(x.shape()));
  Var d = sub(recon, x);
  return mean(sum(flatten(mul(d, d)), {1}));
}

std::vector<double> pretrain_autoencoder(Autoencoder& ae, const Tensor& x, const SvddTrainConfig& cfg,
                                         Generator& g, const SvddProgress& progress) {
  return train_epochs("autoencoder pretraining", ae, x, cfg, g, [&](const Tensor& b) { return reconstruction_loss(ae(Var(b)), Var(b)); },
                      progress);
}

std::shared_ptr<nn::Module> lenet(const std::string& name) {
  // Reference names: MNIST_LeNet uses bn1, bn2; the others bn2d1.. and bn1d1 (A.4).
  if (name == "mnist") return std::make_shared<LeNet>(1, 28, std::vector<int64_t>{8, 4}, std::vector<int64_t>{32}, "bn");
  if (name == "fmnist")
    return std::make_shared<LeNet>(1, 28, std::vector<int64_t>{16, 32}, std::vector<int64_t>{128, 64}, "bn2d");
  if (name == "cifar10")
    return std::make_shared<LeNet>(3, 32, std::vector<int64_t>{32, 64, 128}, std::vector<int64_t>{128}, "bn2d");
  throw Error("lenet: unknown network '" + name + "' (mnist, fmnist, cifar10)");
}

std::shared_ptr<nn::Sequential> svdd_mlp(int64_t in, const std::vector<int64_t>& widths) {
  check(in > 0 && !widths.empty(), "svdd_mlp", "needs an input size and at least one width");
  auto net = std::make_shared<nn::Sequential>();
  for (size_t i = 0; i < widths.size(); ++i) {
    net->push_back(std::make_shared<nn::Linear>(i ? widths[i - 1] : in, widths[i], false));
    if (i + 1 < widths.size()) {
      net->push_back(std::make_shared<nn::BatchNorm1d>(widths[i], 1e-4f, 0.1f, false));
      net->push_back(std::make_shared<nn::LeakyReLU>(0.01f));
    }
  }
  return net;
}

Tensor svdd_center(nn::Module& net, const Tensor& x, int64_t batch, float eps) {
  check(batch >= 1 && x.size(0) >= 1, "svdd_center", "needs rows and batch >= 1");
  NoGradGuard ng;
  net.eval();
  Tensor sum;
  for (int64_t s = 0; s < x.size(0); s += batch) {
    Tensor part = normad::sum((net)(Var(slice(x, 0, s, std::min(x.size(0), s + batch)).to(net.device()))).data(), {0});
    sum = sum.defined() ? add(sum, part) : part;
  }
  Tensor c = mul_scalar(sum, 1.f / static_cast<float>(x.size(0)));
  // A.2: push small coordinates to +-eps (a zero unit is trivially matched with zero weights).
  // D values once per fit: done on a host copy (no copy when c is on the CPU already).
  Tensor host = c.to(Device::CPU);
  for (int64_t j = 0; j < host.numel(); ++j) {
    float& v = host.data()[j];
    if (std::fabs(v) < eps && v < 0) v = -eps;
    else if (std::fabs(v) < eps && v > 0) v = eps;
  }
  return host.to(c.device());
}

std::vector<double> DeepSvdd::fit(const Tensor& x, const SvddTrainConfig& cfg, Generator& g,
                                  const SvddProgress& progress) {
  // The centre comes from the network as it is (A.2): after pretrain_autoencoder its encoder's
  // weights and running statistics; without pretraining a fresh network in eval mode (running
  // statistics 0 and 1), as the reference code does with pretrain=False.
  check(cfg.epochs >= 1 && cfg.batch >= 2, "DeepSvdd::fit", "needs epochs >= 1 and batch >= 2");
  c = svdd_center(*net, x);
  const std::vector<float> c_values = c.to_vector();
  for (size_t j = 0; j < c_values.size(); ++j)
    check(std::isfinite(c_values[j]), "Deep SVDD",
          "the centre c is not finite (component " + std::to_string(j) +
              "): the network's outputs overflow on this input; look for extreme values");
  // The centre travels with a checkpoint: on a resume it comes back as it was computed here.
  return train_epochs("Deep SVDD", *net, x, cfg, g, [&](const Tensor& b) {
    Var diff = sub((*net)(Var(b)), Var(c));
    return mean(sum(mul(diff, diff), {1}));
  }, progress, {{"c", c}});
}

std::vector<double> DeepSvdd::score(const Tensor& x, int64_t batch) {
  check(batch >= 1, "DeepSvdd::score", "batch must be >= 1");
  NoGradGuard ng;
  net->eval();  // running statistics (A.7)
  std::vector<double> out;
  for (int64_t s = 0; s < x.size(0); s += batch) {
    Tensor diff = sub((*net)(Var(slice(x, 0, s, std::min(x.size(0), s + batch)).to(net->device()))).data(), c);
    for (float v : sum(mul(diff, diff), {1}).to_vector()) out.push_back(v);
  }
  return out;
}

}  // namespace normad::models
