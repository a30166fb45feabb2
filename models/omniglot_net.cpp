// The Omniglot conv net (see models/omniglot_net.h). Tested by tests/test_acr.cpp.
#include "models/omniglot_net.h"

#include "nn/init.h"

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

Var OmniglotNet::forward(const Var& x) {
  check(x.dim() == 4 && x.size(1) == 1, "OmniglotNet", "expects [N, 1, H, W], got " + shape_str(x.shape()));
  Var h = x;
  for (size_t i = 0; i < convs_.size(); ++i) h = relu((*bns_[i])((*convs_[i])(h)));
  return (*bns_.back())((*head_)(global_avg_pool(h)));
}

std::shared_ptr<nn::Sequential> tabular_mlp(int64_t in, Generator& init, int64_t hidden, int64_t embed) {
  auto net = std::make_shared<nn::Sequential>();
  // Every Linear drawn from `init` (PyTorch's default rule), so the seed alone fixes the weights.
  auto linear = [&](int64_t a, int64_t b) {
    auto l = std::make_shared<nn::Linear>(a, b);
    nn::init::torch_default_(l->weight.data(), &l->bias.data(), init);
    return l;
  };
  for (int i = 0; i < 3; ++i) {
    net->push_back(linear(i ? hidden : in, hidden));
    net->push_back(std::make_shared<nn::BatchNorm1d>(hidden));
    net->push_back(std::make_shared<nn::ReLU>());
  }
  net->push_back(linear(hidden, embed));
  auto out = std::make_shared<nn::BatchNorm1d>(embed);
  nn::init::uniform_(out->weight.data(), 0.f, 1.f, init);
  net->push_back(out);
  return net;
}

}  // namespace normad::models
