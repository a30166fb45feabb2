// NeuTraL-AD (ntl_dsvdd.md part B): K learnable transformations and a shared encoder, trained with
// the deterministic contrastive loss (DCL); the anomaly score of a sample is its DCL loss.
// Math: views z_0 = f(x), z_k = f(T_k(x)); u = z / max(|z|, 1e-12); s(a, b) = <u_a, u_b> / tau;
// L(x) = (1 / (K ln K)) sum_{k=1..K} [ln sum_{l != k} exp s(k, l) - s(k, 0)].
// Tested by tests/test_ntl.cpp (DCL against a direct double-precision formula, finite differences,
// a synthetic table it must separate).
//
// Shapes: x [N, D]; views stacked view-major into [(K+1) N, D]; embeddings [N, K+1, Z].
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "tensor/random.h"

namespace normad::models {

// Per-sample DCL of z [N, V, Z] with V = K + 1 views (view 0 the original) -> [N].
Var dcl_loss(const Var& z, float tau = 0.1f);
// ACR-NTL's anomaly loss (acr.md §4.2): (1 / (K ln K)) sum_k -ln(1 - pos_k / den_k), computed as
// ln den_k - ln sum_{l not in {0, k}} exp s(k, l), free of the cancellation in 1 - pos/den. -> [N].
Var dcl_anomaly_loss(const Var& z, float tau = 0.1f);
// ACR-NTL's loss summed over rows (acr.md 4.2-4.3): dcl_loss of the `normal` rows plus
// dcl_anomaly_loss of the `anomalous` ones -> scalar. The same sums as the two losses on every row
// then picked (the similarities and ln den_k computed once for both, the anomaly loss's second
// log-sum-exp on the anomalous rows only); tested against them, values and gradients.
Var dcl_acr_sum(const Var& z, const std::vector<int64_t>& normal, const std::vector<int64_t>& anomalous,
                float tau = 0.1f);

struct NtlConfig {
  int64_t x_dim = 0;
  int64_t K = 11;                   // transformations (the loss sees K + 1 views)
  std::string trans_type = "residual";  // forward | residual | mul (ntl_dsvdd.md B.1)
  int64_t trans_layers = 2, trans_hidden = 0;  // 0: x_dim (B.2 default)
  int64_t enc_layers = 5, enc_hidden = 0, z_dim = 0;  // 0: B.2 defaults from x_dim
  bool batch_norm = false;          // affine-free BN1d in the encoder
  bool trans_bias = false, enc_bias = false;
  float tau = 0.1f;
};

// Fills the B.2 defaults (hidden and z sizes from x_dim) and validates.
NtlConfig ntl_defaults(NtlConfig c);

class NeutralAD : public nn::Module {
 public:
  explicit NeutralAD(const NtlConfig& cfg);
  Var forward(const Var& x) override;  // x [N, D] -> per-sample DCL [N]
  Var embed(const Var& x);             // x [N, D] -> [N, K+1, Z]
  const NtlConfig& config() const { return cfg_; }

 private:
  NtlConfig cfg_;
  std::vector<std::shared_ptr<nn::Sequential>> trans_;
  std::shared_ptr<nn::Sequential> enc_;
};

// The architecture as model-file metadata ("ntl.*" keys) and back; from_metadata validates.
std::map<std::string, std::string> ntl_metadata(const NtlConfig& c);
NtlConfig ntl_from_metadata(const std::map<std::string, std::string>& meta,
                            const std::string& file = "model metadata");  // `file`: named in errors

// One-class training on normal rows x [N, D] (ntl_dsvdd.md B.5): Adam with weight decay, StepLR
// (step, gamma 0.5) per epoch, shuffled mini-batches; loss = batch mean of the DCL.
struct NtlTrainConfig {
  int64_t epochs = 200, batch = 128, lr_step = 200;
  float lr = 1e-3f, weight_decay = 1e-5f, lr_gamma = 0.5f;
  // Model selection (B.5, `Patience` with use_train_loss): from epoch `select_from` (1-based) on,
  // keep the weights of the epoch with the lowest mean training loss (ties: the later epoch) and
  // stop after `patience` epochs without improvement. patience 0: no selection, the last epoch.
  int64_t patience = 100, select_from = 6;
  // Epoch checkpoints (--checkpoint, --resume): the network, Adam, the shuffling generator, the
  // losses and the model-selection state (best weights, loss, epochs since).
  nn::CheckpointPlan checkpoint;
};
struct NtlTrainResult {
  std::vector<double> losses;  // mean training loss of each epoch run
  int64_t selected_epoch = 0;  // 1-based epoch whose weights the network holds
  bool selection_applied = false;  // false: patience 0 or fewer epochs than select_from (the last epoch kept)
};
using NtlProgress = std::function<void(int64_t epoch, int64_t epochs, double loss)>;
NtlTrainResult train_ntl(NeutralAD& net, const Tensor& x, const NtlTrainConfig& cfg, Generator& g,
                         const NtlProgress& progress = {});
// Scores (the DCL of each row) in eval mode, no graph, in batches of `batch` rows.
std::vector<double> score_ntl(NeutralAD& net, const Tensor& x, int64_t batch = 1024);

}  // namespace normad::models
