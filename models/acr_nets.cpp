// The ACR-DSVDD networks (see models/acr_nets.h). Tested by tests/test_acr.cpp.
#include "models/acr_nets.h"

#include "nn/init.h"
#include "tensor/backend.h"

namespace normad::models {

OmniglotNet::OmniglotNet(Generator& g, int64_t channels, int64_t embed) {
  int64_t in = 1;
  for (int i = 0; i < 4; ++i) {
    auto conv = register_module("conv" + std::to_string(i), std::make_shared<nn::Conv2d>(in, channels, 3, 2, 1));
    auto bn = register_module("bn" + std::to_string(i), std::make_shared<nn::BatchNorm2d>(channels));
    nn::init::xavier_uniform_(conv->weight.data(), 1.f, g);  // acr.md §8
    conv->bias.data().fill_(0.f);
    convs_.push_back(conv);
    bns_.push_back(bn);
    in = channels;
  }
  head_ = register_module("head", std::make_shared<nn::Linear>(channels, embed));  // re-drawn below
  nn::init::normal_(head_->weight.data(), 0.f, 1.f, g);
  head_->bias.data().fill_(0.f);
  bns_.push_back(register_module("bn_out", std::make_shared<nn::BatchNorm1d>(embed)));
  for (auto& bn : bns_) nn::init::uniform_(bn->weight.data(), 0.f, 1.f, g);  // beta stays 0
}

// Each BN + ReLU between two convolutions is applied by the second convolution as it reads its
// input (autograd's conv2d_bn_relu_input), and each convolution but the last hands its BN the
// output's batch statistics from the same op (conv2d_statistics: on the CPU computed as each output
// plane is written). So the BN's output (50 MB for 1000 images after the first layer) is never
// written and read back, in training (the backward's weight gradient normalises the input again,
// and the BN's backward recomputes its ReLU mask, as batch_norm_relu_train's does) or in zero-shot
// scoring without a graph. The same bits as the layer-by-layer forward and backward on the CPU
// (tests/test_acr.cpp); on the reference backend ~1 ulp apart (its layer-by-layer forward
// normalises with double statistics, the fused op with the saved float ones). CUDA goes layer by
// layer: its fused entries are the plain ones composed (no fused kernel yet, and not yet run on a
// GPU), the same work plus recomputing the BN's output. So does a backend without the fused
// entries, and a BN that normalises with its running statistics (conv, then BN + ReLU, one op).
// One layer a statement: a nested call's temporaries (the conv's and BN's outputs) would all live
// until the statement ends, 4 activations at once instead of 2 when scoring without a graph.
Var OmniglotNet::forward(const Var& x) {
  check(x.dim() == 4 && x.size(1) == 1, "OmniglotNet", "expects [N, 1, H, W], got " + shape_str(x.shape()));
  const Backend& be = backend_for(x.data().device());
  const bool fused = fuse_batch_norms && be.device != Device::CUDA && supports(be, Op::conv2d_bn_relu_input) &&
                     supports(be, Op::conv2d_statistics) && supports(be, Op::conv2d_bn_relu_input_backward_weight);
  Var h = x;
  // bns_[i - 1]'s BN + ReLU of h (the previous convolution's output) for its statistics, when they
  // came with it: then the next convolution applies it as it reads h
  std::optional<BnReluInputVar> in;
  for (size_t i = 0; i < convs_.size(); ++i) {
    nn::Conv2d& conv = *convs_[i];
    // the last convolution's BN + ReLU comes after the loop (its output is not convolved again)
    auto with_stats = fused && i + 1 < convs_.size()
                          ? bns_[i]->conv_with_statistics(h, in ? &*in : nullptr, conv.weight, conv.bias, conv.args)
                          : std::nullopt;
    if (with_stats) {
      h = std::move(with_stats->first);
      in = bns_[i]->relu_input_of(std::move(with_stats->second));
      continue;
    }
    h = in ? conv2d_bn_relu_input(h, &*in, conv.weight, conv.bias, conv.args) : conv(h);
    in.reset();
    h = bns_[i]->forward_relu(h);  // BN + ReLU, one fused op
  }
  return (*bns_.back())((*head_)(global_avg_pool(h)));
}

Cnn4::Cnn4(Generator& g, int64_t channels, int64_t embed) {
  int64_t in = 3;
  for (int i = 0; i < 4; ++i) {
    auto conv = register_module("conv" + std::to_string(i), std::make_shared<nn::Conv2d>(in, channels, 3, 1, 1));
    auto bn = register_module("bn" + std::to_string(i), std::make_shared<nn::BatchNorm2d>(channels));
    nn::init::xavier_uniform_(conv->weight.data(), 1.f, g);
    conv->bias.data().fill_(0.f);
    convs_.push_back(conv);
    bns_.push_back(bn);
    in = channels;
  }
  // §12: the released CNN4 comments this Linear out; restored with its commented-out init
  head_ = register_module("head", std::make_shared<nn::Linear>(channels * 4, embed));
  nn::init::xavier_uniform_(head_->weight.data(), 1.f, g);
  head_->bias.data().fill_(0.f);
  bns_.push_back(register_module("bn_out", std::make_shared<nn::BatchNorm1d>(embed)));
  for (auto& bn : bns_) nn::init::uniform_(bn->weight.data(), 0.f, 1.f, g);  // beta stays 0
}

Var Cnn4::forward(const Var& x) {
  check(x.dim() == 4 && x.size(1) == 3 && x.size(2) == 32 && x.size(3) == 32, "Cnn4",
        "expects [N, 3, 32, 32], got " + shape_str(x.shape()));
  const Pool2dArgs pool{2, 2, 2, 2, 0, 0, false, true};
  Var h = x;
  for (size_t i = 0; i < convs_.size(); ++i) {  // one op a statement, as OmniglotNet
    h = (*convs_[i])(h);
    h = bns_[i]->forward_relu(h);
    h = max_pool2d(h, pool);
  }
  return (*bns_.back())((*head_)(flatten(h)));  // 128 x 2 x 2 in (C, H, W) order
}

namespace {
// A Linear with PyTorch's default rule drawn from `init`, so the seed alone fixes the weights.
std::shared_ptr<nn::Linear> default_linear(int64_t a, int64_t b, Generator& init) {
  auto l = std::make_shared<nn::Linear>(a, b);
  nn::init::torch_default_(l->weight.data(), &l->bias.data(), init);
  return l;
}
// The final BN1d of an embedding: gamma ~ U(0, 1), beta 0 (acr.md §8).
std::shared_ptr<nn::BatchNorm1d> embedding_bn(int64_t embed, Generator& init) {
  auto out = std::make_shared<nn::BatchNorm1d>(embed);
  nn::init::uniform_(out->weight.data(), 0.f, 1.f, init);
  return out;
}
}  // namespace

std::shared_ptr<nn::Sequential> feature_svdd(int64_t in, Generator& init, int64_t halvings, int64_t embed) {
  check(halvings >= 1 && (in >> halvings) >= 1 && in % (int64_t(1) << halvings) == 0, "feature_svdd",
        "input size " + std::to_string(in) + " cannot be halved " + std::to_string(halvings) + " times");
  auto net = std::make_shared<nn::Sequential>();
  int64_t d = in;
  for (int64_t i = 0; i < halvings; ++i, d /= 2) {
    net->push_back(default_linear(d, d / 2, init));
    net->push_back(std::make_shared<nn::BatchNorm1d>(d / 2));
    net->push_back(std::make_shared<nn::ReLU>());
  }
  net->push_back(default_linear(d, embed, init));
  net->push_back(embedding_bn(embed, init));
  return net;
}

std::shared_ptr<nn::Sequential> tabular_mlp(int64_t in, Generator& init, int64_t hidden, int64_t embed) {
  auto net = std::make_shared<nn::Sequential>();
  for (int i = 0; i < 3; ++i) {
    net->push_back(default_linear(i ? hidden : in, hidden, init));
    net->push_back(std::make_shared<nn::BatchNorm1d>(hidden));
    net->push_back(std::make_shared<nn::ReLU>());
  }
  net->push_back(default_linear(hidden, embed, init));
  net->push_back(embedding_bn(embed, init));
  return net;
}

}  // namespace normad::models
