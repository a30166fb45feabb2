// nn tests: PyTorch state_dict names, train/eval propagation, layer forward against the tensor ops,
// initialiser bounds, optimisers and schedules against hand-computed steps.
#include "nn/init.h"
#include "nn/loss.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include <tuple>

#include "tests/helpers.h"

using namespace normad;

namespace {
// A block shaped like torchvision's BasicBlock, to check hierarchical names.
struct Block : nn::Module {
  std::shared_ptr<nn::Conv2d> conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(2, 2, 3, 1, 1, false));
  std::shared_ptr<nn::BatchNorm2d> bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(2));
  Var forward(const Var& x) override { return relu((*bn1)((*conv1)(x))); }
};
}  // namespace

TEST_CASE("nn: hierarchical names match PyTorch's state_dict", "[nn]") {
  auto layer1 = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{std::make_shared<Block>(), std::make_shared<Block>()});
  struct Net : nn::Module {
    std::shared_ptr<nn::Sequential> l;
    std::shared_ptr<nn::Linear> fc = register_module("fc", std::make_shared<nn::Linear>(2, 3));
    explicit Net(std::shared_ptr<nn::Sequential> s) : l(register_module("layer1", s)) {}
    Var forward(const Var& x) override { return (*fc)(global_avg_pool((*l)(x))); }
  } net(layer1);
  std::vector<std::string> names;
  for (auto& [n, t] : net.state_dict()) names.push_back(n);
  std::vector<std::string> expect{"fc.weight", "fc.bias",
                                  "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias",
                                  "layer1.1.conv1.weight", "layer1.1.bn1.weight", "layer1.1.bn1.bias",
                                  "layer1.0.bn1.running_mean", "layer1.0.bn1.running_var",
                                  "layer1.0.bn1.num_batches_tracked", "layer1.1.bn1.running_mean",
                                  "layer1.1.bn1.running_var", "layer1.1.bn1.num_batches_tracked"};
  std::sort(names.begin(), names.end());
  std::sort(expect.begin(), expect.end());
  CHECK(names == expect);
  net.eval();
  CHECK_FALSE(layer1->named_children()[0].second->is_training());
  Var y = net(Var(Generator(1).normal({2, 2, 4, 4})));
  CHECK(y.shape() == Shape{2, 3});
}

TEST_CASE("nn: Linear computes x W^T + b and has PyTorch's init bounds", "[nn]") {
  manual_seed(3);
  nn::Linear lin(50, 20);
  const float bound = 1.f / std::sqrt(50.f);
  for (float v : lin.weight.data().to_vector()) REQUIRE(std::fabs(v) <= bound);
  for (float v : lin.bias.data().to_vector()) REQUIRE(std::fabs(v) <= bound);
  Tensor x = Generator(4).normal({3, 50});
  test::expect_close(lin(Var(x)).data(), add(matmul(x, transpose(lin.weight.data(), 0, 1)), lin.bias.data()),
                     1e-5, 1e-5, "linear");
  CHECK_THROWS_WITH(lin(Var(Tensor({3, 49}))), Catch::Contains("[3, 49]"));
  nn::Linear nb(4, 2, false);
  CHECK_FALSE(nb.bias.defined());
  CHECK(nb.parameters().size() == 1);
}

TEST_CASE("init: kaiming and xavier bounds, variance", "[nn]") {
  Generator g(5);
  Tensor w({256, 128, 3, 3});
  nn::init::kaiming_uniform_(w, 0.f, g);
  const double bound = std::sqrt(6.0 / (128 * 9));
  double var = 0;
  for (float v : w.to_vector()) {
    REQUIRE(std::fabs(v) <= bound);
    var += double(v) * v;
  }
  CHECK(var / w.numel() == Approx(bound * bound / 3).epsilon(0.02));  // var of U(-b, b) = b^2/3
  Tensor x({100, 300});
  nn::init::xavier_uniform_(x, 1.f, g);
  double xvar = 0;
  for (float v : x.to_vector()) {
    REQUIRE(std::fabs(v) <= std::sqrt(6.0 / 400) + 1e-7);
    xvar += double(v) * v;
  }
  CHECK(xvar / x.numel() == Approx(6.0 / 400 / 3).epsilon(0.03));
  CHECK(nn::init::fan_in(w) == 128 * 9);
  CHECK(nn::init::fan_out(w) == 256 * 9);
}

TEST_CASE("optim: SGD with momentum and weight decay, by hand", "[optim]") {
  Var p(Tensor::from({1}, {1.f}), true);
  nn::SGD opt({p}, 0.1f, 0.9f, 0.01f);
  double w = 1, v = 0;
  for (int t = 0; t < 3; ++t) {
    opt.zero_grad();
    sum(p * p).backward();  // g = 2w
    opt.step();
    double d = 2 * w + 0.01 * w;
    v = t == 0 ? d : 0.9 * v + d;
    w -= 0.1 * v;
    CHECK(p.data().item() == Approx(w).epsilon(1e-6));
  }
}

TEST_CASE("optim: Adam by hand, StepLR and MultiStepLR schedules", "[optim]") {
  Var p(Tensor::from({2}, {1.f, -2.f}), true);
  nn::Adam opt({p}, 0.01f, 0.9f, 0.999f, 1e-8f, 0.f);
  std::vector<double> w{1, -2}, m{0, 0}, v{0, 0};
  for (int t = 1; t <= 3; ++t) {
    opt.zero_grad();
    sum(p * p * p).backward();  // g = 3 w^2
    opt.step();
    for (int i = 0; i < 2; ++i) {
      double g = 3 * w[i] * w[i];
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      w[i] -= 0.01 * (m[i] / (1 - std::pow(0.9, t))) / (std::sqrt(v[i] / (1 - std::pow(0.999, t))) + 1e-8);
      CHECK(p.data().data()[i] == Approx(w[i]).epsilon(1e-5));
    }
  }
  // A parameter without a grad in an iteration is not stepped and its step count stays (torch).
  Var q(Tensor::from({1}, {1.f}), true), r(Tensor::from({1}, {1.f}), true);
  nn::Adam two({q, r}, 0.1f);
  for (int t = 0; t < 3; ++t) {
    two.zero_grad();
    (t == 1 ? sum(q) : sum(q + r)).backward();
    two.step();
  }
  // q: three steps with g = 1 each; r: two steps with g = 1. With a constant gradient, every
  // Adam step moves by lr (m / bc1 = 1, sqrt(v / bc2) = 1) up to eps.
  CHECK(q.data().item() == Approx(1.f - 0.3f).epsilon(1e-5));
  CHECK(r.data().item() == Approx(1.f - 0.2f).epsilon(1e-5));

  nn::SGD sgd({p}, 1.f);
  nn::StepLR step(sgd, 2, 0.5f);
  std::vector<float> lrs;
  for (int i = 0; i < 5; ++i) step.step(), lrs.push_back(sgd.lr);
  CHECK(lrs == std::vector<float>{1.f, 0.5f, 0.5f, 0.25f, 0.25f});
  nn::SGD sgd2({p}, 1.f);
  nn::MultiStepLR ms(sgd2, {2, 4}, 0.1f);
  lrs.clear();
  for (int i = 0; i < 5; ++i) ms.step(), lrs.push_back(sgd2.lr);
  CHECK(lrs[0] == 1.f);
  CHECK(lrs[1] == Approx(0.1f));
  CHECK(lrs[3] == Approx(0.01f));
  CHECK(lrs[4] == Approx(0.01f));
}

TEST_CASE("loss: cross_entropy closed form and gradient", "[nn][loss]") {
  // Uniform logits over K classes: loss = log K.
  CHECK(nn::cross_entropy(Var(Tensor::zeros({3, 4})), {0, 1, 3}).item() == Approx(std::log(4.0)));
  Tensor z = Tensor::from({1, 3}, {1.f, 2.f, 3.f});
  double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  CHECK(nn::cross_entropy(Var(z), {0}).item() == Approx(lse - 1.0));
  test::check_grad([](const std::vector<Var>& v) { return nn::cross_entropy(v[0], {2, 0, 1}); },
                   {Generator(9).normal({3, 4})}, 1e-2, 1e-4, 3e-4, "cross_entropy");
  CHECK_THROWS_AS(nn::cross_entropy(Var(Tensor({2, 3})), {0, 3}), Error);
}

TEST_CASE("nn: Module::to moves parameters and buffers in place, training then runs there and matches the CPU", "[nn][device]") {
  // Two identical blocks: one stays on the CPU, one moves to the reference backend.
  Generator g1(5), g2(5);
  Block cpu_block, ref_block;
  for (auto* b : {&cpu_block, &ref_block}) {
    Generator& g = b == &cpu_block ? g1 : g2;
    for (auto& [n, p] : b->named_parameters()) nn::init::uniform_(p.data(), -0.5f, 0.5f, g);
  }
  Tensor running_mean_handle = ref_block.bn1->running_mean;  // a copy of the layer's handle
  ref_block.to(Device::Reference);
  for (auto& [n, t] : ref_block.state_dict()) {
    INFO(n);
    CHECK(t.device() == Device::Reference);
  }
  CHECK(ref_block.bn1->running_mean.device() == Device::Reference);  // the layer's own member
  CHECK(running_mean_handle.device() == Device::Reference);          // and every other handle
  // Two Adam steps on each; the optimiser state is made on the parameters' device.
  Generator gx(9);
  Tensor x = Tensor::empty({4, 2, 5, 5});
  nn::init::normal_(x, 0.f, 1.f, gx);
  nn::Adam cpu_opt(cpu_block.parameters(), 0.01f), ref_opt(ref_block.parameters(), 0.01f);
  for (int step = 0; step < 2; ++step) {
    for (auto [blk, opt, dev] : {std::tuple{&cpu_block, &cpu_opt, Device::CPU},
                                 std::tuple{&ref_block, &ref_opt, Device::Reference}}) {
      opt->zero_grad();
      sum(mul((*blk)(Var(x.to(dev))), (*blk)(Var(x.to(dev))))).backward();
      opt->step();
    }
  }
  auto cpu_state = cpu_block.state_dict(), ref_state = ref_block.state_dict();
  for (size_t i = 0; i < cpu_state.size(); ++i) {
    INFO(cpu_state[i].first);
    CHECK(ref_state[i].second.device() == Device::Reference);
    test::expect_close(ref_state[i].second.to(Device::CPU), cpu_state[i].second, 1e-5, 1e-4, cpu_state[i].first);
  }
  // Back to the CPU: values unchanged by the move.
  const std::vector<float> before = ref_block.bn1->running_var.to_vector();
  ref_block.to(Device::CPU);
  CHECK(ref_block.bn1->running_var.device() == Device::CPU);
  CHECK(ref_block.bn1->running_var.to_vector() == before);
}
