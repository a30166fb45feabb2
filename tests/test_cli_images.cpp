// `normad features` and `normad mvg fit | score | eval` on a generated MVTec-like tree with a
// resnet18 of default-initialised weights written by the test: the CSV features equal the library's
// FeatureExtractor, a model fitted on a features CSV scores like the library, an image-fitted
// single-level model equals the CSV-fitted one, eval's AUROC equals the AUROC of score's output,
// and bad input gives one clear line, exit code 2 and no output file.
#include <filesystem>
#include <fstream>
#include <json.hpp>

#include "data/csv.h"
#include "data/image_sets.h"
#include "eval/metrics.h"
#include "models/image_features.h"
#include "tensor/random.h"
#include "tests/cli_run.h"
#include "tests/helpers.h"
#include "tests/image_files.h"

using namespace normad;
using normad::test::run;
namespace fs = std::filesystem;

namespace {

// ROOT/<cat>/train/good (8), test/good (4), test/crack (4, a bright square) and its masks.
std::string write_tree(const fs::path& dir) {
  const fs::path root = dir / "mvtec";
  Generator g(5);
  auto image = [&](const fs::path& path, int base, bool defect) {
    std::vector<unsigned char> px(24 * 24 * 3);
    for (int i = 0; i < 24 * 24 * 3; ++i) {
      const int y = i / 72, x = (i / 3) % 24;
      const bool in = defect && y >= 6 && y < 14 && x >= 8 && x < 16;
      px[size_t(i)] = (unsigned char)std::clamp(base + int(g.uniform1(-20, 20)) + (in ? 120 : 0), 0, 255);
    }
    test::write_image(path.string(), 24, 24, 3, px);
  };
  for (auto [cat, base] : {std::pair<std::string, int>{"bottle", 90}, {"grid", 130}}) {
    for (int i = 0; i < 8; ++i) image(root / cat / "train/good" / (std::to_string(100 + i) + ".png"), base, false);
    for (int i = 0; i < 4; ++i) {
      image(root / cat / "test/good" / (std::to_string(i) + ".png"), base, false);
      image(root / cat / "test/crack" / (std::to_string(i) + ".png"), base, true);
      test::write_image((root / cat / "ground_truth/crack" / (std::to_string(i) + "_mask.png")).string(), 24, 24, 1,
                        std::vector<unsigned char>(24 * 24, 255));
    }
  }
  return root.string();
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

TEST_CASE("cli: features and mvg on an MVTec-like tree", "[cli][gaussian]") {
  const fs::path dir = fs::temp_directory_path() / "normad_test_cli_images";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string root = write_tree(dir), w = (dir / "r18.safetensors").string();
  {
    manual_seed(11);
    auto net = models::make_backbone("resnet18");
    nn::save_module(w, *net);
  }
  auto p = [&](const std::string& name) { return (dir / name).string(); };
  const std::string pipe = " --backbone resnet18 --weights " + w + " --size 32 --levels 2,4 --threads 2";

  // features: one row per training image, 128 + 512 columns, equal to the library's extractor
  // (the CLI in batches of 3, the library in one batch of 16).
  test::Run r = run("features" + pipe + " --batch 3 --mvtec " + root + " --category bottle --out " + p("f.csv"));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const data::Table f = data::read_table(p("f.csv"), "name");
  REQUIRE(f.x.size(0) == 8);
  REQUIRE(f.x.size(1) == 640);
  CHECK(f.labels[0] == "good/100.png");
  models::FeatureSpec spec;
  spec.backbone = "resnet18";
  spec.weights = w;
  spec.levels = {2, 4};
  spec.prep.size = 32;
  const models::FeatureExtractor fx(spec);
  const Tensor ref = fx.extract(data::item_paths(data::mvtec_items(root, "bottle", "train")));
  test::expect_close(f.x, ref, 1e-6, 1e-6, "features CSV vs FeatureExtractor");

  // mvg fit / score on the CSV: the scores are the library's.
  r = run("mvg fit --features " + p("f.csv") + " --out " + p("m.safetensors") + " --json " + p("fit.json"));
  REQUIRE(r.rc == 0);
  CHECK(nlohmann::json::parse(slurp(p("fit.json")))["levels"] == 1);
  r = run("mvg score --model " + p("m.safetensors") + " --features " + p("f.csv") + " --out " + p("s.csv"));
  REQUIRE(r.rc == 0);
  const models::GaussianAd m = models::GaussianAd::load(p("m.safetensors"));
  const std::vector<double> want = m.score({f.x});
  const data::Csv s = data::read_csv(p("s.csv"));
  REQUIRE(s.header == std::vector<std::string>{"name", "score", "label"});
  REQUIRE(s.rows.size() == 8);
  for (size_t i = 0; i < 8; ++i) {
    CHECK(s.rows[i][0] == f.labels[i]);
    CHECK(std::stod(s.rows[i][1]) == Approx(want[i]).epsilon(1e-7));
    CHECK(s.rows[i][2] == (want[i] > m.decision_threshold() ? "1" : "0"));
  }

  // One level fitted from images equals the same level fitted from its CSV (CSV keeps 9 digits).
  r = run("features" + pipe.substr(0, pipe.find("--levels")) + "--levels 4 --mvtec " + root +
          " --category grid --out " + p("g.csv"));
  REQUIRE(r.rc == 0);
  r = run("mvg fit" + pipe.substr(0, pipe.find("--levels")) + "--levels 4 --mvtec " + root +
          " --category grid --out " + p("mi.safetensors"));
  REQUIRE(r.rc == 0);
  REQUIRE(run("mvg fit --features " + p("g.csv") + " --out " + p("mf.safetensors")).rc == 0);
  REQUIRE(run("mvg score --model " + p("mi.safetensors") + " --mvtec " + root + " --category grid --out " +
              p("si.csv")).rc == 0);
  REQUIRE(run("features" + pipe.substr(0, pipe.find("--levels")) + "--levels 4 --mvtec " + root +
              " --category grid --split test --out " + p("gt.csv")).rc == 0);
  REQUIRE(run("mvg score --model " + p("mf.safetensors") + " --features " + p("gt.csv") + " --out " + p("sf.csv")).rc == 0);
  const data::Csv si = data::read_csv(p("si.csv")), sf = data::read_csv(p("sf.csv"));
  REQUIRE(si.rows.size() == 8);
  std::vector<double> grid_scores;
  for (size_t i = 0; i < 8; ++i) {
    CHECK(si.rows[i][0] == sf.rows[i][0]);
    CHECK(std::stod(si.rows[i][1]) == Approx(std::stod(sf.rows[i][1])).epsilon(1e-4));
    grid_scores.push_back(std::stod(si.rows[i][1]));
  }
  CHECK(si.rows[0][0] == "crack/0.png");

  // Two levels, thresholds from reference images: the empirical threshold flags fpr of them.
  fs::create_directories(p("empty"));
  r = run("mvg fit" + pipe + " --mvtec " + root + " --category bottle --reference " + root +
          "/bottle/test/good --fpr 0.25 --out " + p("e2.safetensors"));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const models::GaussianAd e2 = models::GaussianAd::load(p("e2.safetensors"));
  CHECK(e2.levels.size() == 2);
  CHECK(e2.empirical_preferred);
  CHECK(e2.info.at("threshold.source").find("reference images") == 0);
  REQUIRE(run("mvg score --model " + p("e2.safetensors") + " --images " + root + "/bottle/test/good --out " +
              p("se.csv")).rc == 0);
  const data::Csv se = data::read_csv(p("se.csv"));
  int flagged = 0;
  for (const auto& row : se.rows) flagged += row[2] == "1";
  CHECK(flagged == 1);  // above the 75th percentile of 4 reference scores: the top one

  // eval: per-category AUROC of the score output against the MVTec labels; mean and SEM with --all.
  r = run("mvg eval --mvtec " + root + " --all --json " + p("e.json") + pipe.substr(0, pipe.find("--levels")) +
          "--levels 4");
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("mean ± SEM") != std::string::npos);
  const auto js = nlohmann::json::parse(slurp(p("e.json")));
  const double grid_auc = eval::auroc(grid_scores, data::item_labels(data::mvtec_items(root, "grid", "test")));
  CHECK(js["categories"]["grid"]["auroc"].get<double>() == Approx(grid_auc));
  CHECK(js["categories"]["bottle"]["train"] == 8);

  // Errors: one line, exit code 2, nothing written.
  auto fails = [&](const std::string& args, const std::string& says) {
    const test::Run e = run(args + " --out " + p("never.csv"));
    INFO(args << "\n" << e.out);
    CHECK(e.rc == 2);
    CHECK(e.out.find(says) != std::string::npos);
    CHECK_FALSE(fs::exists(p("never.csv")));
  };
  fails("features" + pipe + " --mvtec " + root + " --category carpet", "carpet");
  fails("features" + pipe + " --images " + p("nowhere"), "nowhere");
  fails("features --backbone resnet19 --weights " + w + " --images " + root, "resnet19");
  fails("features --backbone resnet18 --weights " + w + " --levels 5 --mvtec " + root + " --category grid", "0..4");
  fails("mvg fit --features " + p("f.csv") + " --pca 0.9 --npca 0.9", "--pca and --npca");
  fails("mvg fit --features " + p("f.csv") + " --npca 1.5", "(0, 1)");
  fails("mvg score --model " + w + " --features " + p("f.csv"), "not a Gaussian-AD model");
  fails("mvg score --model " + p("m.safetensors") + " --features " + p("g.csv"), "expects 640");
  fails("mvg score --model " + p("e2.safetensors") + " --features " + p("f.csv"), "2 feature levels");
  fails("mvg fit" + pipe + " --mvtec " + root + " --category grid --reference " + p("empty"), "no images");
  fails("features" + pipe.substr(0, pipe.find("--levels")) + "--levels 4,2 --images " + root, "increasing");
  test::write_image((fs::path(root) / "grid/train/good/zz.png").string(), 4, 4, 3, std::vector<unsigned char>(48));
  {
    std::ofstream bad(fs::path(root) / "grid/train/good/bad.png");
    bad << "not a png";
  }
  fails("mvg fit" + pipe + " --mvtec " + root + " --category grid", "bad.png");
  fs::remove_all(dir);
}
