// torchvision's ResNet and EfficientNet (B0, B4) as nn::Modules with the same state_dict names
// (see models/backbones.h). Sources followed line by line: torchvision 0.14
// models/resnet.py (BasicBlock, Bottleneck, ResNet._make_layer) and models/efficientnet.py
// (MBConvConfig, MBConv, EfficientNet, _efficientnet_conf) with ops/misc.py
// (Conv2dNormActivation, SqueezeExcitation) and models/_utils.py (_make_divisible).
// Math: conv -> BN(eval) -> act is y = act(scale_f * conv(x) + shift_f) with
// scale = gamma / sqrt(var + eps), shift = beta - mean * scale; BN eps 1e-5 for all five models
// (torchvision 0.14 builds the B-series with plain nn.BatchNorm2d).
// Tested by tests/test_backbones.cpp against torchvision fixtures.
//
// Shapes: N batch, C channels, H, W spatial; E expanded channels, S squeeze channels (SE).
#include "models/backbones.h"

#include <algorithm>
#include <cmath>

#include "tensor/parallel.h"
#include "tensor/random.h"

namespace normad::models {

namespace {

using Act = Activation;  // none, relu, silu (tensor/ops.h)

Var activate(const Var& y, Act act) {
  if (act == Act::relu) return relu(y);
  if (act == Act::silu) return silu(y);
  return y;
}

// conv -> BN -> activation, the unit of both families. Recording autograd or training: composed
// ops (conv, BN, activation each a graph node). Inference (no grad, BN in eval mode): one fused
// pass, y = act(scale * conv(x) + shift) with the BN folded into scale and shift (and the conv
// bias, if any, into shift), and no graph.
Var conv_bn_act(nn::Conv2d& conv, nn::BatchNorm& bn, const Var& x, Act act) {
  if (grad_enabled() || bn.is_training() || bn.batch_stats_in_eval)
    return activate(bn(conv(x)), act);
  // Fold the BN (and the conv bias, if any) into a per-filter affine on the weights' device.
  Tensor scale, shift;
  batch_norm_fold(bn.weight.defined() ? bn.weight.data() : Tensor(), bn.weight.defined() ? bn.bias.data() : Tensor(),
                  conv.bias.defined() ? conv.bias.data() : Tensor(), bn.running_mean, bn.running_var, bn.eps,
                  &scale, &shift);
  return Var(conv2d_affine_act(x.data(), conv.weight.data(), scale, shift, conv.args, act));
}

// torchvision's Dropout before the classifier: the identity at inference, and it holds no tensors.
class Identity : public nn::Module {
 public:
  Var forward(const Var& x) override { return x; }
};

// ---- ResNet (torchvision models/resnet.py) ------------------------------------------------

// conv1x1 + BN shortcut when the block changes stride or width; registered as "downsample.0/1".
struct Downsample {
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
};

// BasicBlock (expansion 1): 3x3 (stride) -> BN -> ReLU -> 3x3 -> BN, + shortcut, ReLU.
class BasicBlock : public nn::Module {
 public:
  BasicBlock(int64_t in, int64_t planes, int64_t stride) {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(in, planes, 3, stride, 1, false));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(planes, planes, 3, 1, 1, false));
    bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes));
    if (stride != 1 || in != planes) ds = make_downsample(in, planes, stride);
  }
  Var forward(const Var& x) override {
    Var out = conv_bn_act(*conv1, *bn1, x, Act::relu);
    out = conv_bn_act(*conv2, *bn2, out, Act::none);
    Var id = ds.conv ? conv_bn_act(*ds.conv, *ds.bn, x, Act::none) : x;
    return relu(add(out, id));
  }

  // Shared by both block types: a Sequential "downsample" of conv1x1 (stride) and BN.
  Downsample make_downsample(int64_t in, int64_t out, int64_t stride) {
    auto seq = register_module("downsample", std::make_shared<nn::Sequential>());
    Downsample d{std::make_shared<nn::Conv2d>(in, out, 1, stride, 0, false),
                 std::make_shared<nn::BatchNorm2d>(out)};
    seq->push_back(d.conv);
    seq->push_back(d.bn);
    return d;
  }

 protected:
  BasicBlock() = default;
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  Downsample ds;
};

// Bottleneck (expansion 4, V1.5): 1x1 -> BN -> ReLU -> 3x3 (stride) -> BN -> ReLU -> 1x1 -> BN,
// + shortcut, ReLU. width = planes * width_per_group / 64 (128 for wide_resnet50_2).
class Bottleneck : public BasicBlock {
 public:
  Bottleneck(int64_t in, int64_t planes, int64_t stride, int64_t width_per_group) {
    const int64_t width = planes * width_per_group / 64, out = planes * 4;
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(in, width, 1, 1, 0, false));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(width));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(width, width, 3, stride, 1, false));
    bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(width));
    conv3 = register_module("conv3", std::make_shared<nn::Conv2d>(width, out, 1, 1, 0, false));
    bn3 = register_module("bn3", std::make_shared<nn::BatchNorm2d>(out));
    if (stride != 1 || in != out) ds = make_downsample(in, out, stride);
  }
  Var forward(const Var& x) override {
    Var out = conv_bn_act(*conv1, *bn1, x, Act::relu);
    out = conv_bn_act(*conv2, *bn2, out, Act::relu);
    out = conv_bn_act(*conv3, *bn3, out, Act::none);
    Var id = ds.conv ? conv_bn_act(*ds.conv, *ds.bn, x, Act::none) : x;
    return relu(add(out, id));
  }

 private:
  std::shared_ptr<nn::Conv2d> conv3;
  std::shared_ptr<nn::BatchNorm2d> bn3;
};

class ResNet : public Backbone {
 public:
  // blocks per layer; width_per_group 0 selects BasicBlock, else Bottleneck with that width.
  ResNet(std::string name, std::vector<int> blocks, int64_t width_per_group)
      : Backbone(std::move(name), level_channels_of(width_per_group), 224) {
    const int64_t e = width_per_group ? 4 : 1;  // block expansion
    conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(3, 64, 7, 2, 3, false));
    bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(64));
    int64_t in = 64;
    for (int l = 0; l < 4; ++l) {
      const int64_t planes = int64_t(64) << l;
      auto layer = register_module("layer" + std::to_string(l + 1), std::make_shared<nn::Sequential>());
      for (int b = 0; b < blocks[l]; ++b) {
        const int64_t stride = (l > 0 && b == 0) ? 2 : 1;  // layer2..4 halve in their first block
        if (width_per_group)
          layer->push_back(std::make_shared<Bottleneck>(in, planes, stride, width_per_group));
        else
          layer->push_back(std::make_shared<BasicBlock>(in, planes, stride));
        in = planes * e;
      }
      layers_.push_back(layer);
    }
    fc_ = register_module("fc", std::make_shared<nn::Linear>(512 * e, 1000));
  }

 protected:
  std::vector<Var> run_levels(const Var& x, int last, const std::vector<bool>& keep) override {
    std::vector<Var> out(last + 1);
    // stem: 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max-pool (level 0); inference skips the
    // argmax the pooling backward would need
    Var h = conv_bn_act(*conv1_, *bn1_, x, Act::relu);
    h = grad_enabled() ? pool_.forward(h) : Var(max_pool2d(h.data(), pool_.args));
    if (keep[0]) out[0] = h;
    for (int l = 1; l <= last; ++l) {
      h = layers_[l - 1]->forward(h);
      if (keep[l]) out[l] = h;
    }
    return out;
  }
  Var head(const Var& pooled) override { return fc_->forward(pooled); }

 private:
  static std::vector<int64_t> level_channels_of(int64_t width_per_group) {
    const int64_t e = width_per_group ? 4 : 1;
    return {64, 64 * e, 128 * e, 256 * e, 512 * e};
  }
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::BatchNorm2d> bn1_;
  nn::MaxPool2d pool_{3, 2, 1};
  std::vector<std::shared_ptr<nn::Sequential>> layers_;
  std::shared_ptr<nn::Linear> fc_;
};

// ---- EfficientNet (torchvision models/efficientnet.py) --------------------------------------

// _make_divisible(v, 8): round to the nearest multiple of 8 (at least 8), never more than 10% down.
int64_t make_divisible(double v, int64_t divisor = 8) {
  int64_t n = std::max(divisor, int64_t(v + double(divisor) / 2) / divisor * divisor);
  if (double(n) < 0.9 * v) n += divisor;
  return n;
}

// Conv2dNormActivation: children "0" conv (no bias, padding (k - 1) / 2), "1" BN, then act.
class ConvBnAct : public nn::Module {
 public:
  ConvBnAct(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t groups, Act act)
      : act_(act) {
    conv_ = register_module("0", std::make_shared<nn::Conv2d>(in, out, k, stride, (k - 1) / 2, false,
                                                               1, groups));
    bn_ = register_module("1", std::make_shared<nn::BatchNorm2d>(out));
  }
  Var forward(const Var& x) override { return conv_bn_act(*conv_, *bn_, x, act_); }

 private:
  std::shared_ptr<nn::Conv2d> conv_;
  std::shared_ptr<nn::BatchNorm2d> bn_;
  Act act_;
};

// SqueezeExcitation: h * sigmoid(fc2(SiLU(fc1(mean_hw h)))), fc1/fc2 1x1 convs with bias, applied
// to the pooled [N, E] vector as matrix products with the weights viewed as [S, E] / [E, S].
class SqueezeExcitation : public nn::Module {
 public:
  SqueezeExcitation(int64_t channels, int64_t squeeze) {
    fc1_ = register_module("fc1", std::make_shared<nn::Conv2d>(channels, squeeze, 1));
    fc2_ = register_module("fc2", std::make_shared<nn::Conv2d>(squeeze, channels, 1));
  }
  Var forward(const Var& x) override {
    const int64_t N = x.size(0), E = x.size(1), S = fc1_->weight.size(0);
    Var s = global_avg_pool(x);                                                      // [N, E]
    s = silu(add(matmul(s, reshape(fc1_->weight, {S, E}), false, true), fc1_->bias));  // [N, S]
    s = sigmoid(add(matmul(s, reshape(fc2_->weight, {E, S}), false, true), fc2_->bias));
    if (grad_enabled()) return mul(x, reshape(s, {N, E, 1, 1}));
    return Var(scale_planes(x.data(), s.data()));  // inference: one multiply per element, no broadcasting
  }


 private:
  std::shared_ptr<nn::Conv2d> fc1_, fc2_;
};

// MBConv: "block" = [expand 1x1 (when expand_ratio != 1)], depthwise k x k (stride), SE, project
// 1x1 (no activation); + x when stride 1 and in == out (stochastic depth: identity at inference).
class MBConv : public nn::Module {
 public:
  MBConv(double expand_ratio, int64_t k, int64_t stride, int64_t in, int64_t out)
      : residual_(stride == 1 && in == out) {
    block_ = register_module("block", std::make_shared<nn::Sequential>());
    const int64_t expanded = make_divisible(double(in) * expand_ratio);
    if (expanded != in) block_->push_back(std::make_shared<ConvBnAct>(in, expanded, 1, 1, 1, Act::silu));
    block_->push_back(std::make_shared<ConvBnAct>(expanded, expanded, k, stride, expanded, Act::silu));
    block_->push_back(std::make_shared<SqueezeExcitation>(expanded, std::max<int64_t>(1, in / 4)));
    block_->push_back(std::make_shared<ConvBnAct>(expanded, out, 1, 1, 1, Act::none));
  }
  Var forward(const Var& x) override {
    Var y = block_->forward(x);
    return residual_ ? add(y, x) : y;
  }

 private:
  std::shared_ptr<nn::Sequential> block_;
  bool residual_;
};

// One row of _efficientnet_conf's B-series table (before width / depth scaling).
struct StageConf {
  double expand;
  int64_t kernel, stride, in, out;
  int layers;
};
constexpr StageConf kStages[7] = {
    {1, 3, 1, 32, 16, 1}, {6, 3, 2, 16, 24, 2},  {6, 5, 2, 24, 40, 2},  {6, 3, 2, 40, 80, 3},
    {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1},
};

class EfficientNet : public Backbone {
 public:
  EfficientNet(std::string name, double width, double depth, int native_size)
      : Backbone(std::move(name), level_channels_of(width), native_size) {
    auto adjust = [&](int64_t c) { return make_divisible(double(c) * width); };
    features_ = register_module("features", std::make_shared<nn::Sequential>());
    // features[0]: 3x3 stride-2 conv to adjust(32), BN, SiLU
    features_->push_back(std::make_shared<ConvBnAct>(3, adjust(32), 3, 2, 1, Act::silu));
    // features[1..7]: ceil(layers * depth) MBConv blocks; the first has the stage's stride and
    // input width, the rest stride 1 at the output width
    for (const StageConf& s : kStages) {
      auto stage = std::make_shared<nn::Sequential>();
      const int n = int(std::ceil(double(s.layers) * depth));
      for (int b = 0; b < n; ++b)
        stage->push_back(std::make_shared<MBConv>(s.expand, s.kernel, b == 0 ? s.stride : 1,
                                                  b == 0 ? adjust(s.in) : adjust(s.out), adjust(s.out)));
      features_->push_back(stage);
    }
    // features[8]: 1x1 conv to 4 x the last stage's width, BN, SiLU
    const int64_t last_in = adjust(kStages[6].out);
    features_->push_back(std::make_shared<ConvBnAct>(last_in, 4 * last_in, 1, 1, 1, Act::silu));
    // classifier: [Dropout (identity here), Linear(4 * last_in, 1000)]
    auto classifier = register_module("classifier", std::make_shared<nn::Sequential>());
    classifier->push_back(std::make_shared<Identity>());
    fc_ = std::make_shared<nn::Linear>(4 * last_in, 1000);
    classifier->push_back(fc_);
  }

 protected:
  std::vector<Var> run_levels(const Var& x, int last, const std::vector<bool>& keep) override {
    std::vector<Var> out(last + 1);
    Var h = x;
    for (int l = 0; l <= last; ++l) {
      h = (*features_)[l]->forward(h);
      if (keep[l]) out[l] = h;
    }
    return out;
  }
  Var head(const Var& pooled) override { return fc_->forward(pooled); }

 private:
  static std::vector<int64_t> level_channels_of(double width) {
    std::vector<int64_t> c{make_divisible(32 * width)};
    for (const StageConf& s : kStages) c.push_back(make_divisible(double(s.out) * width));
    c.push_back(4 * c.back());
    return c;
  }
  std::shared_ptr<nn::Sequential> features_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace

// ---- Backbone --------------------------------------------------------------------------------

int Backbone::check_levels(const Shape& x, const std::vector<int>& levels) const {
  check(x.size() == 4 && x[1] == 3, name_, "expects x [N, 3, H, W], got " + shape_str(x));
  check(!levels.empty(), name_, "no levels requested");
  int last = 0;
  for (int l : levels) {
    check(l >= 0 && l < num_levels(), name_,
          "level " + std::to_string(l) + " out of range [0, " + std::to_string(num_levels()) + ")");
    last = std::max(last, l);
  }
  return last;
}

std::vector<Var> Backbone::forward_levels(const Var& x, const std::vector<int>& levels) {
  const int last = check_levels(x.shape(), levels);
  std::vector<bool> keep(last + 1, false);
  for (int l : levels) keep[l] = true;
  std::vector<Var> maps = run_levels(x, last, keep);
  std::vector<Var> out;
  for (int l : levels) out.push_back(maps[l]);
  return out;
}

std::vector<Tensor> Backbone::features(const Tensor& x, const std::vector<int>& levels) {
  eval();  // gaussian_ad.md §2: BN uses the stored running statistics
  NoGradGuard no_grad;
  std::vector<Tensor> out;
  for (const Var& v : forward_levels(Var(x), levels)) out.push_back(v.data());
  return out;
}

Var Backbone::forward(const Var& x) {
  const int last = num_levels() - 1;
  return head(global_avg_pool(forward_levels(x, {last})[0]));
}

// ---- factory, loading, pooling ----------------------------------------------------------------

std::vector<std::string> backbone_names() {
  return {"resnet18", "resnet50", "wide_resnet50_2", "efficientnet_b0", "efficientnet_b4"};
}

std::shared_ptr<Backbone> make_backbone(const std::string& name) {
  // nn layers draw their default init from the default generator; restore it afterwards so that
  // building a backbone (whose weights are then loaded) does not shift other seeded draws
  const Generator saved = default_generator();
  std::shared_ptr<Backbone> b;
  if (name == "resnet18") b = std::make_shared<ResNet>(name, std::vector<int>{2, 2, 2, 2}, 0);
  else if (name == "resnet50") b = std::make_shared<ResNet>(name, std::vector<int>{3, 4, 6, 3}, 64);
  else if (name == "wide_resnet50_2") b = std::make_shared<ResNet>(name, std::vector<int>{3, 4, 6, 3}, 128);
  else if (name == "efficientnet_b0") b = std::make_shared<EfficientNet>(name, 1.0, 1.0, 224);
  else if (name == "efficientnet_b4") b = std::make_shared<EfficientNet>(name, 1.4, 1.8, 380);
  default_generator() = saved;
  if (!b) {
    std::string valid;
    for (const auto& n : backbone_names()) valid += (valid.empty() ? "" : ", ") + n;
    throw Error("unknown backbone '" + name + "' (valid: " + valid + ")");
  }
  b->eval();
  return b;
}

nn::LoadReport load_backbone(Backbone& b, const std::string& path) {
  nn::Safetensors f = nn::load_safetensors(path);
  // num_batches_tracked: drop the file's counters, and take the module's own for every BN, so
  // they are neither unexpected nor missing (they only matter for momentum=None training)
  auto is_counter = [](const std::string& k) {
    const std::string suffix = ".num_batches_tracked";
    return k.size() >= suffix.size() && k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::erase_if(f.tensors, [&](const auto& kv) { return is_counter(kv.first); });
  for (const auto& [k, t] : b.named_buffers())
    if (is_counter(k)) f.tensors[k] = t.clone();
  try {
    return nn::load_state(b, f, true);  // also refuses a NaN or inf weight, naming the tensor
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

Tensor pool_levels(const std::vector<Tensor>& maps) {
  check(!maps.empty(), "pool_levels", "no maps");
  std::vector<Tensor> pooled;
  for (const Tensor& m : maps) pooled.push_back(global_avg_pool(m));  // [N, C_l]
  return concat(pooled, 1);
}

}  // namespace normad::models
