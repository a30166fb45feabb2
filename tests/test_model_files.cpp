// Model files read by `normad score` (detect/table_detector.h): the weights a file's metadata declares
// are counted without building the network, and a file must hold them before anything is
// allocated. Tests: the counts equal the built networks' state for each architecture; a real model
// file whose metadata is edited to declare a huge network is refused with a message naming the
// file, the field and both counts (before the bound, acr.in = 2^24 built a 4 GiB network and
// ntl.K = 1000 with wide layers asked for terabytes: std::bad_alloc or the OOM killer).
#include <filesystem>
#include <fstream>

#include "detect/table_detector.h"
#include "models/acr_nets.h"
#include "tensor/random.h"
#include "tests/cli_run.h"
#include "tests/helpers.h"

using namespace normad;

namespace {
double built_values(const std::vector<std::pair<std::string, Tensor>>& state) {
  double n = 0;
  for (const auto& [name, t] : state) n += double(t.numel());
  return n;
}
}  // namespace

TEST_CASE("model files: declared weights counted without building equal the built networks'", "[cli][model-files]") {
  for (bool bn : {false, true})
    for (bool bias : {false, true})
      for (int64_t layers : {1, 2, 4}) {
        models::NtlConfig c;
        c.x_dim = 7, c.K = 3, c.trans_layers = layers, c.enc_layers = layers + 1, c.batch_norm = bn;
        c.trans_bias = bias, c.enc_bias = bias;
        c = models::ntl_defaults(c);
        INFO("bn " << bn << " bias " << bias << " layers " << layers);
        CHECK(ntl_state_values(c) == built_values(models::NeutralAD(c).state_dict()));
      }
  for (const auto& widths : std::vector<std::vector<int64_t>>{{3}, {8, 4}, {16, 9, 5}})
    CHECK(svdd_mlp_state_values(11, widths) == built_values(models::svdd_mlp(11, widths)->state_dict()));
  for (const std::string kind : {"acr-dsvdd", "acr-ntl"})
    for (int64_t F : {1, 3, 37}) {
      Generator g(0);
      INFO(kind << " F " << F);
      CHECK(acr_state_values(kind, F) == built_values(make_acr(kind, F, g)->state()));
    }
}

TEST_CASE("model files: metadata declaring more weights than the file holds, or another input width, is refused before building", "[cli][model-files]") {
  const auto dir = std::filesystem::temp_directory_path() / "normad_model_files";
  std::filesystem::create_directories(dir);
  const std::string data = (dir / "t.csv").string();
  {
    Generator g(1);
    std::ofstream f(data);
    f << "a,b,label\n";
    for (int i = 0; i < 150; ++i) f << g.normal1() + i % 3 << "," << g.normal1() << "," << "nmo"[i % 3] << "\n";
  }
  struct Case {
    std::string model, args, field, huge, message;
  };
  const std::string bound = "declares a network of";
  // An input width other than the stored preprocessing's is refused first (by its own check).
  const std::string width = "but the stored preprocessing makes 2 features";
  const std::vector<Case> cases = {
      {"dsvdd", "--normal n --epochs 1 --widths 4,2", "dsvdd.widths", "1048576,1048576,2", bound},
      {"ntl", "--normal n --epochs 1 --transformations 2", "ntl.trans_hidden", "65536", bound},
      {"ntl", "--normal n --epochs 1 --transformations 2", "ntl.K", "1000", bound},
      {"dsvdd", "--normal n --epochs 1 --widths 4,2", "dsvdd.in", "16777216", width},
      {"acr-dsvdd", "--iters 1 --batch 4", "acr.in", "16777216", width},
      {"acr-ntl", "--iters 1 --batch 4", "acr.in", "3", width},
  };
  for (const Case& c : cases) {
    INFO(c.model << " " << c.field << " = " << c.huge);
    const std::string path = (dir / (c.model + ".safetensors")).string();
    const test::Run r = test::run("train --model " + c.model + " --data " + data + " --label label " + c.args +
                                  " --threads 1 --out " + path);
    INFO(r.out);
    REQUIRE(r.rc == 0);
    nn::Safetensors f = nn::load_safetensors(path);
    REQUIRE_NOTHROW(TableDetector::from_file(f, path));  // the file as written loads
    f.metadata[c.field] = c.huge;
    try {
      TableDetector::from_file(f, path);
      FAIL("the edited file loaded");
    } catch (const Error& e) {
      const std::string msg = e.what();
      CHECK_THAT(msg, Catch::Contains(path) && Catch::Contains(c.message));
    }
  }
  std::filesystem::remove_all(dir);
}
