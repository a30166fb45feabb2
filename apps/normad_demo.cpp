// normad demo: trains a two-layer network (784 -> 128 -> 10, ReLU) on Fashion-MNIST with Adam and
// prints its loss curve and test accuracy. A stand-in for `normad zeroshot` until the models land.
// Math: minimise mean cross-entropy over mini-batches of 128; accuracy = mean(argmax z == y).
// Tested by running it (`make demo`); every op it uses is tested in tests/.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>

#include "data/idx.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

using namespace normad;

int main(int argc, char** argv) {
  CLI::App app{"normad demo: a two-layer network on Fashion-MNIST"};
  std::string dir = data::kFashionMnistDir;
  int epochs = 2, threads = 0, batch = 128, hidden = 128;
  uint64_t seed = 0;
  float lr = 1e-3f;
  app.add_option("--data-dir", dir, "directory with the IDX files")->capture_default_str();
  app.add_option("--epochs", epochs, "passes over the training set")->capture_default_str();
  app.add_option("--batch", batch, "mini-batch size")->capture_default_str();
  app.add_option("--hidden", hidden, "hidden units")->capture_default_str();
  app.add_option("--lr", lr, "Adam learning rate")->capture_default_str();
  app.add_option("--seed", seed, "random seed")->capture_default_str();
  app.add_option("--threads", threads, "threads (0: all cores)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    set_num_threads(threads);
    manual_seed(seed);
    data::Mnist m = data::load_mnist_dir(dir);
    const int64_t n = m.train_x.size(0);
    Tensor train_x = m.train_x.reshape({n, 784}), test_x = m.test_x.reshape({m.test_x.size(0), 784});
    std::printf("Fashion-MNIST: %lld train, %lld test images; MLP 784-%d-10, Adam lr %g, batch %d, %d threads\n",
                (long long)n, (long long)test_x.size(0), hidden, lr, batch, num_threads());

    nn::Sequential net({std::make_shared<nn::Linear>(784, hidden), std::make_shared<nn::ReLU>(),
                        std::make_shared<nn::Linear>(hidden, 10)});
    nn::Adam opt(net.parameters(), lr);
    Generator shuffle(seed + 1);
    auto t0 = std::chrono::steady_clock::now();
    int64_t step = 0;
    for (int e = 0; e < epochs; ++e) {
      auto order = shuffle.permutation(n);
      double running = 0;
      int count = 0;
      for (int64_t s = 0; s + batch <= n; s += batch, ++step) {
        std::vector<int64_t> idx(order.begin() + s, order.begin() + s + batch), y(batch);
        for (int i = 0; i < batch; ++i) y[i] = m.train_y[idx[i]];
        Var loss = nn::cross_entropy(net(Var(index_select(train_x, idx))), y);
        opt.zero_grad();
        loss.backward();
        opt.step();
        running += loss.item(), ++count;
        if (step % 100 == 0) {
          double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          std::printf("epoch %d step %5lld  loss %.4f  (%.0f steps/s)\n", e, (long long)step,
                      running / count, step / std::max(secs, 1e-9));
          running = 0, count = 0;
        }
      }
      // Test accuracy with the current weights.
      NoGradGuard ng;
      Tensor am;
      max(net(Var(test_x)).data(), 1, false, &am);
      int64_t right = 0;
      for (int64_t i = 0; i < am.numel(); ++i) right += int64_t(am.data()[i]) == m.test_y[i];
      std::printf("epoch %d: test accuracy %.4f\n", e, double(right) / am.numel());
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("trained %lld steps in %.1f s\n", (long long)step, secs);
  } catch (const Error& e) {
    std::fprintf(stderr, "normad_demo: %s\n", e.what());
    return 2;
  }
  return 0;
}
