// `normad features` and `normad mvg fit | score | eval` on a generated MVTec-like tree with a
// resnet18 of default-initialised weights written by the test: the CSV features equal the library's
// FeatureExtractor, a model fitted on a features CSV scores like the library, an image-fitted model
// equals the CSV-fitted one (one and two levels), the README's flow (features CSV -> mvg fit ->
// mvg score --images) with its weights path and SHA-256 rules, the held-out threshold against the
// share of new normal images it flags, non-finite values as errors, eval's AUROC equals the AUROC
// of score's output, and bad input gives one clear line, exit code 2 and no output file.
#include <filesystem>
#include <fstream>
#include <json.hpp>

#include "data/csv.h"
#include "nn/safetensors.h"
#include "data/image_sets.h"
#include "eval/metrics.h"
#include "models/image_features.h"
#include "tensor/random.h"
#include "tests/cli_run.h"
#include "tests/helpers.h"
#include "tests/image_files.h"
#include "tests/scratch.h"

using namespace normad;
using normad::test::run;
namespace fs = std::filesystem;

namespace {

// ROOT/<cat>/train/good (8), test/good (4), test/crack (4, a bright square) and its masks.
std::string write_tree(const fs::path& dir) {
  const fs::path root = dir / "mvtec";
  Generator g(5);
  auto image = [&](const fs::path& path, int base, bool defect) { test::write_noisy_image(path.string(), base, defect, g); };
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

void spill(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

using test::Scratch;

// resnet18 weights of nn's default initialisation from `seed`.
void write_resnet18(const std::string& path, uint64_t seed) {
  manual_seed(seed);
  auto net = models::make_backbone("resnet18");
  nn::save_module(path, *net);
}

// Writes resnet18 weights (seed 11) into the scratch directory; returns the options that use them.
std::string resnet18_options(const Scratch& p, const std::string& extra) {
  write_resnet18(p("w.safetensors"), 11);
  return " --backbone resnet18 --weights " + p("w.safetensors") + " --size 32 --threads 2" + extra;
}

// Noisy grey images around `base` (no defect): one normal class.
void write_normals(const fs::path& dir, int n, int base, uint64_t seed) {
  Generator g(seed);
  for (int k = 0; k < n; ++k) {
    std::vector<unsigned char> px(24 * 24 * 3);
    for (auto& v : px) v = (unsigned char)std::clamp(base + int(g.uniform1(-30, 30)), 0, 255);
    test::write_image((dir / (std::to_string(1000 + k) + ".png")).string(), 24, 24, 3, px);
  }
}

// The scores column of a scores CSV.
std::vector<double> score_column(const std::string& path) {
  std::vector<double> out;
  for (const auto& row : data::read_csv(path).rows) out.push_back(std::stod(row[1]));
  return out;
}

// Runs `args`; expects exit code 2, each of `says` in its output, no internal names, no file `never`.
void expect_error(const std::string& args, const std::vector<std::string>& says, const std::string& never) {
  const test::Run e = run(args);
  INFO(args << "\n" << e.out);
  CHECK(e.rc == 2);
  for (const std::string& s : says) CHECK(e.out.find(s) != std::string::npos);
  CHECK(e.out.find("std::") == std::string::npos);
  CHECK(e.out.find("stoi") == std::string::npos);
  CHECK(e.out.find("stod") == std::string::npos);
  CHECK_FALSE(fs::exists(never));
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
  const models::FeaturesCsv fc = models::read_features_csv(p("f.csv"));
  const data::Table& f = fc.table;
  CHECK(fc.dims == std::vector<int64_t>{128, 512});
  CHECK(fc.pipeline.at("features.levels") == "2,4");
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

  // mvg fit / score on the CSV: one Gaussian per level, the scores are the library's.
  r = run("mvg fit --features " + p("f.csv") + " --out " + p("m.safetensors") + " --json " + p("fit.json"));
  REQUIRE(r.rc == 0);
  CHECK(nlohmann::json::parse(slurp(p("fit.json")))["levels"] == 2);
  r = run("mvg score --model " + p("m.safetensors") + " --features " + p("f.csv") + " --out " + p("s.csv"));
  REQUIRE(r.rc == 0);
  const models::GaussianAd m = models::GaussianAd::load(p("m.safetensors"));
  const std::vector<double> want = m.score(fc.levels());
  const data::Csv s = data::read_csv(p("s.csv"));
  REQUIRE(s.header == std::vector<std::string>{"name", "score", "prediction"});
  REQUIRE(s.rows.size() == 8);
  for (size_t i = 0; i < 8; ++i) {
    CHECK(s.rows[i][0] == f.labels[i]);
    CHECK(std::stod(s.rows[i][1]) == Approx(want[i]).epsilon(1e-7));
    CHECK(s.rows[i][2] == (want[i] > m.decision_threshold() ? "1" : "0"));
  }

  // --device: features and Gaussian-AD scores on another backend equal the CPU's. The reference
  // device stands in for a GPU under NORMAD_STRICT_DEVICE=1 (its tensors refuse host reads as CUDA
  // ones do): the backbone runs there and the scoring is the device path (float32 whitening GEMM and
  // row norms), so it agrees with the double CPU scores to float rounding.
  setenv("NORMAD_STRICT_DEVICE", "1", 1);
  r = run("features" + pipe + " --batch 3 --mvtec " + root + " --category bottle --device reference --out " + p("fr.csv"));
  const test::Run rs = run("mvg score --model " + p("m.safetensors") + " --features " + p("f.csv") +
                           " --device reference --out " + p("sr.csv"));
  const test::Run ri = run("mvg score --model " + p("m.safetensors") + " --weights " + w + " --mvtec " + root +
                           " --category bottle --split train --device reference --out " + p("sri.csv"));
  unsetenv("NORMAD_STRICT_DEVICE");
  INFO(r.out << rs.out << ri.out);
  REQUIRE(r.rc == 0);
  REQUIRE(rs.rc == 0);
  test::expect_close(models::read_features_csv(p("fr.csv")).table.x, f.x, 1e-5, 1e-4, "features on the reference device");
  const std::vector<double> s_dev = score_column(p("sr.csv"));
  REQUIRE(s_dev.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(s_dev[i] == Approx(want[i]).epsilon(1e-4));
  REQUIRE(ri.rc == 0);  // from the images: the backbone and the scoring on the device
  const std::vector<double> s_img = score_column(p("sri.csv"));
  REQUIRE(s_img.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(s_img[i] == Approx(want[i]).epsilon(1e-3));

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

  // Two levels, threshold from reference images (fit on all training images): it flags fpr of them.
  fs::create_directories(p("empty"));
  r = run("mvg fit" + pipe + " --mvtec " + root + " --category bottle --reference " + root +
          "/bottle/test/good --fpr 0.4 --out " + p("e2.safetensors"));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const models::GaussianAd e2 = models::GaussianAd::load(p("e2.safetensors"));
  CHECK(e2.levels.size() == 2);
  CHECK(e2.threshold.rule == "reference");
  CHECK(e2.threshold.rows == 4);
  CHECK(e2.info.at("fit.rows") == "8");
  REQUIRE(run("mvg score --model " + p("e2.safetensors") + " --images " + root + "/bottle/test/good --out " +
              p("se.csv")).rc == 0);
  const data::Csv se = data::read_csv(p("se.csv"));
  int flagged = 0;
  for (const auto& row : se.rows) flagged += row[2] == "1";
  CHECK(flagged == 1);  // conformal: the k = ceil(5 * 0.6) = 3rd smallest of 4 reference scores, the top one above

  // eval: per-category AUROC of the score output against the MVTec labels; mean and SEM with --all.
  r = run("mvg eval --mvtec " + root + " --all --json " + p("e.json") + pipe.substr(0, pipe.find("--levels")) +
          "--levels 4");
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("mean ± SEM") != std::string::npos);
  const auto js = nlohmann::json::parse(slurp(p("e.json")));
  const double grid_auc = eval::auroc(grid_scores, data::item_labels(data::mvtec_items(root, "grid", "test")));
  CHECK(js["categories"]["grid"]["auroc"].get<double>() == Approx(grid_auc));
  // The data make the ranking certain: a square 120 grey levels brighter covers a ninth of each crack image, so every
  // crack image scores above every good one (a model scoring with wrong weights or statistics,
  // or a label mix-up, fails here, not only a mismatch between two paths).
  CHECK(grid_auc == 1.0);
  CHECK(js["categories"]["bottle"]["auroc"].get<double>() == 1.0);
  CHECK(js["categories"]["bottle"]["train"] == 8);

  // Errors: one line, exit code 2, nothing written.
  auto fails = [&](const std::string& args, const std::string& says) {
    expect_error(args + " --out " + p("never.csv"), {says}, p("never.csv"));
  };
  fails("features" + pipe + " --mvtec " + root + " --category carpet", "carpet");
  fails("features" + pipe + " --images " + p("nowhere"), "nowhere");
  fails("features --backbone resnet19 --weights " + w + " --images " + root, "resnet19");
  fails("features --backbone resnet18 --weights " + w + " --levels 5 --mvtec " + root + " --category grid", "0..4");
  fails("mvg fit --features " + p("f.csv") + " --pca 0.9 --npca 0.9", "--pca and --npca");
  fails("mvg fit --features " + p("f.csv") + " --npca 1.5", "(0, 1)");
  fails("mvg score --model " + w + " --features " + p("f.csv"), "not a Gaussian-AD model");
  fails("mvg score --model " + p("m.safetensors") + " --features " + p("g.csv"), "expects 128,512");
  fails("mvg fit --features " + p("f.csv") + " --reference " + p("g.csv"), "per level 512");
  fails("mvg fit --features " + p("f.csv") + " --reference " + p("f.csv") + " --calibration 0.3", "give one");
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

TEST_CASE("cli: the README's Gaussian-AD flow, features CSV to mvg fit to mvg score on images", "[cli][gaussian]") {
  const Scratch p("normad_test_cli_flow");
  write_normals(p.dir / "train", 10, 100, 1);
  write_normals(p.dir / "test", 4, 100, 2);
  const std::string pipe = resnet18_options(p, " --levels 2,4");

  // features: the pipeline line, and --json.
  test::Run r = run("features" + pipe + " --images " + p("train") + " --out " + p("feats.csv") + " --json " +
                    p("feats.json"));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(slurp(p("feats.csv")).rfind("# normad-features {", 0) == 0);
  REQUIRE(fs::exists(p("feats.json")));
  const auto js = nlohmann::json::parse(slurp(p("feats.json")));
  CHECK(js["rows"] == 10);
  CHECK(js["dims"] == nlohmann::json({128, 512}));
  CHECK(js["backbone"] == "resnet18");
  CHECK(js["levels"] == nlohmann::json({2, 4}));
  CHECK(js["out"] == p("feats.csv"));

  // mvg fit on the CSV: one Gaussian per level, the pipeline stored with a relative weights path.
  r = run("mvg fit --features " + p("feats.csv") + " --out " + p("mvg.safetensors"));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const models::GaussianAd m = models::GaussianAd::load(p("mvg.safetensors"));
  CHECK(m.levels.size() == 2);
  CHECK(m.info.at("features.weights") == "w.safetensors");
  CHECK(m.info.at("features.weights_sha256") == models::file_sha256(p("w.safetensors")));

  // mvg score on images: the scores and threshold of the model fitted on the images themselves.
  r = run("mvg score --model " + p("mvg.safetensors") + " --images " + p("test") + " --out " + p("scores.csv"));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  REQUIRE(run("mvg fit" + pipe + " --images " + p("train") + " --out " + p("mi.safetensors")).rc == 0);
  REQUIRE(run("mvg score --model " + p("mi.safetensors") + " --images " + p("test") + " --out " + p("si.csv")).rc == 0);
  const std::vector<double> from_csv = score_column(p("scores.csv")), from_images = score_column(p("si.csv"));
  REQUIRE(from_csv.size() == 4);
  REQUIRE(from_images.size() == 4);
  for (size_t i = 0; i < 4; ++i) CHECK(from_csv[i] == Approx(from_images[i]).epsilon(1e-5));
  CHECK(models::GaussianAd::load(p("mi.safetensors")).decision_threshold() ==
        Approx(m.decision_threshold()).epsilon(1e-5));

  // The model and its weights moved together still score (the stored path is relative).
  fs::create_directories(p("moved"));
  fs::rename(p("mvg.safetensors"), p("moved/mvg.safetensors"));
  fs::rename(p("w.safetensors"), p("moved/w.safetensors"));
  fs::copy_file(p("moved/w.safetensors"), p("w_copy.safetensors"));
  const std::string moved = "mvg score --model " + p("moved/mvg.safetensors") + " --images " + p("test");
  REQUIRE(run(moved + " --out " + p("s2.csv")).rc == 0);
  CHECK(score_column(p("s2.csv")) == from_csv);
  // The same weights elsewhere with --weights; other weights by --weights or at the stored path are
  // refused, naming both files.
  REQUIRE(run(moved + " --weights " + p("w_copy.safetensors") + " --out " + p("s3.csv")).rc == 0);
  CHECK(score_column(p("s3.csv")) == from_csv);
  write_resnet18(p("other.safetensors"), 12);
  expect_error(moved + " --weights " + p("other.safetensors") + " --out " + p("never.csv"),
               {"moved/w.safetensors", "other.safetensors", "SHA-256"}, p("never.csv"));
  fs::copy_file(p("other.safetensors"), p("moved/w.safetensors"), fs::copy_options::overwrite_existing);
  expect_error(moved + " --out " + p("never.csv"), {"moved/w.safetensors", "SHA-256", "stored in the model"},
               p("never.csv"));
  fs::remove(p("moved/w.safetensors"));
  expect_error(moved + " --out " + p("never.csv"), {"moved/w.safetensors", "not found", "--weights"}, p("never.csv"));

  // A hand-made features CSV (no pipeline line): fits and scores --features; --images is refused.
  std::string hand = "name,a,b,c\n";
  Generator g(3);
  for (int i = 0; i < 10; ++i)
    hand += "r" + std::to_string(i) + "," + std::to_string(g.uniform1(0, 1)) + "," + std::to_string(g.uniform1(0, 1)) +
            "," + std::to_string(g.uniform1(0, 1)) + "\n";
  spill(p("hand.csv"), hand);
  REQUIRE(run("mvg fit --features " + p("hand.csv") + " --out " + p("hand.safetensors")).rc == 0);
  REQUIRE(run("mvg score --model " + p("hand.safetensors") + " --features " + p("hand.csv") + " --out " +
              p("sh.csv")).rc == 0);
  CHECK(score_column(p("sh.csv")).size() == 10);
  expect_error("mvg score --model " + p("hand.safetensors") + " --images " + p("test") + " --out " + p("never.csv"),
               {"hand.safetensors", "'# normad-features' line", "--features"}, p("never.csv"));
}

TEST_CASE("cli: mvg fit sets the decision threshold on held-out normal images", "[cli][gaussian]") {
  const Scratch p("normad_test_cli_threshold");
  // 40 training images and 20 new images of the same normal class.
  write_normals(p.dir / "train", 40, 110, 3);
  write_normals(p.dir / "new", 20, 110, 4);
  const std::string pipe = resnet18_options(p, "");
  test::Run r = run("mvg fit" + pipe + " --images " + p("train") + " --out " + p("m.safetensors") + " --json " +
                    p("fit.json"));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  // The output says which threshold sets the labels and where each comes from.
  CHECK(r.out.find("decision threshold (sets the labels), rule calibration") != std::string::npos);
  CHECK(r.out.find("8 held-out normal rows") != std::string::npos);
  CHECK(r.out.find("chi-square thresholds per level (information only") != std::string::npos);
  const models::GaussianAd m = models::GaussianAd::load(p("m.safetensors"));
  CHECK(m.threshold.rule == "calibration");
  CHECK(m.threshold.rows == 8);  // round(0.2 * 40) held out
  CHECK(m.threshold.target == 0.05);
  CHECK(m.info.at("fit.rows") == "32");  // fitted on the other 32, no refit on all
  const auto js = nlohmann::json::parse(slurp(p("fit.json")));
  CHECK(js["threshold"]["rule"] == "calibration");
  CHECK(js["threshold"]["value"].get<double>() == m.decision_threshold());
  CHECK(js["rows"] == 40);
  CHECK(js["fit_rows"] == 32);

  // New normal images: a threshold set on the training images themselves flagged all of them;
  // the held-out one flags about 1 / (8 + 1) of them.
  r = run("mvg score --model " + p("m.safetensors") + " --images " + p("new") + " --out " + p("s.csv"));
  REQUIRE(r.rc == 0);
  const double share = eval::flagged_share(score_column(p("s.csv")), m.decision_threshold());
  INFO("share of new normal images flagged: " << share);
  CHECK(share <= 0.35);
}

TEST_CASE("cli: NaN and inf in weights, features and scores are errors naming the file", "[cli][gaussian]") {
  const Scratch p("normad_test_cli_finite");
  write_normals(p.dir / "train", 8, 100, 5);
  write_resnet18(p("w.safetensors"), 11);
  const std::string pipe = " --backbone resnet18 --size 32 --levels 2,4 --threads 2 --images " + p("train");
  REQUIRE(run("features --weights " + p("w.safetensors") + pipe + " --out " + p("f.csv")).rc == 0);

  // Backbone weights with a NaN: refused at load, naming the file and the tensor.
  nn::Safetensors w = nn::load_safetensors(p("w.safetensors"));
  w.tensors.at("layer1.0.conv1.weight").data()[7] = NAN;
  nn::save_safetensors(p("nan.safetensors"), {w.tensors.begin(), w.tensors.end()}, w.metadata);
  expect_error("features --weights " + p("nan.safetensors") + pipe + " --out " + p("never.csv"),
               {"nan.safetensors", "layer1.0.conv1.weight", "expected finite weights"}, p("never.csv"));

  // A features CSV cell "nan" / "inf": file, line (the pipeline line counts) and column.
  std::string text = slurp(p("f.csv"));
  size_t at = 0;
  for (int line = 0; line < 4; ++line) at = text.find('\n', at) + 1;  // start of line 5: the third row
  at = text.find(',', at) + 1;                                          // its column f0
  const size_t end = text.find(',', at);
  for (const std::string bad : {"nan", "inf"}) {
    spill(p("bad.csv"), text.substr(0, at) + bad + text.substr(end));
    expect_error("mvg fit --features " + p("bad.csv") + " --out " + p("never.safetensors"),
                 {"bad.csv:5:", "column 'f0'", "not a finite number"}, p("never.safetensors"));
  }

  // Finite weights whose features overflow float32 (the last BN's scale 3e38 and mean -1e6;
  // earlier in the net, ReLU would turn NaN into 0): features, fit and score name the image. A
  // model only meets such weights through an edited pipeline line (their SHA-256 in place of the
  // real weights'). Before, the NaN scores were written with label 0.
  nn::Safetensors big = nn::load_safetensors(p("w.safetensors"));
  big.tensors.at("layer4.1.bn2.weight").fill_(3e38f);
  big.tensors.at("layer4.1.bn2.running_mean").fill_(-1e6f);
  nn::save_safetensors(p("big.safetensors"), {big.tensors.begin(), big.tensors.end()}, big.metadata);
  const std::vector<std::string> names_image = {"train/1000.png", "expected a finite number"};
  expect_error("features --weights " + p("big.safetensors") + pipe + " --out " + p("never.csv"), names_image,
               p("never.csv"));
  expect_error("mvg fit --weights " + p("big.safetensors") + pipe + " --out " + p("never.csv"), names_image,
               p("never.csv"));
  std::string line = text.substr(0, text.find('\n'));
  const std::string sha = models::file_sha256(p("w.safetensors")), big_sha = models::file_sha256(p("big.safetensors"));
  line.replace(line.find(sha), sha.size(), big_sha);
  line.replace(line.find("\"w.safetensors\""), 15, "\"big.safetensors\"");
  spill(p("big.csv"), line + text.substr(text.find('\n')));
  REQUIRE(run("mvg fit --features " + p("big.csv") + " --out " + p("big_model.safetensors")).rc == 0);
  expect_error("mvg score --model " + p("big_model.safetensors") + " --images " + p("train") + " --out " +
               p("never.csv"), names_image, p("never.csv"));
}

TEST_CASE("cli: image command errors name the file, the field and what was expected", "[cli][gaussian]") {
  const Scratch p("normad_test_cli_errors");
  write_normals(p.dir / "train", 8, 100, 6);
  write_normals(p.dir / "two", 2, 100, 7);
  write_resnet18(p("w.safetensors"), 11);
  const std::string pipe = " --backbone resnet18 --weights " + p("w.safetensors") + " --threads 2";
  const std::string never = p("never.csv"), out = " --out " + never;
  // Options: the option, the range, never an allocation failure or a parser's name.
  expect_error("features" + pipe + " --size 100000 --images " + p("train") + out, {"--size", "1..4096"}, never);
  expect_error("features" + pipe + " --size 32 --crop -1 --images " + p("train") + out, {"--crop"}, never);
  expect_error("features" + pipe + " --size 32 --max-image-pixels 0 --images " + p("train") + out,
               {"--max-image-pixels", ">= 1"}, never);
  expect_error("features" + pipe + " --size 32 --max-image-pixels 10 --images " + p("train") + out,
               {p("train"), "pixels, more than the limit of 10", "--max-image-pixels"}, never);
  expect_error("mvg fit" + pipe + " --size 32 --images " + p("train") + " --calibration 1.5" + out,
               {"--calibration", "(0, 1)"}, never);
  expect_error("mvg fit" + pipe + " --size 32 --images " + p("two") + out, {p("two"), "--calibration", "at least 2"},
               never);

  REQUIRE(run("features" + pipe + " --size 32 --levels 2,4 --images " + p("train") + " --out " + p("f.csv")).rc == 0);
  REQUIRE(run("mvg fit --features " + p("f.csv") + " --out " + p("m.safetensors")).rc == 0);
  const std::string text = slurp(p("f.csv")), body = text.substr(text.find('\n') + 1);
  // The pipeline line: not JSON, a missing field, dims that do not add up, another pipeline.
  spill(p("bad.csv"), "# normad-features {not json\n" + body);
  expect_error("mvg fit --features " + p("bad.csv") + out, {"bad.csv:1", "JSON"}, never);
  const std::string line = text.substr(0, text.find('\n') + 1);
  auto edited = [&](const std::string& from, const std::string& to) {
    std::string l = line;
    l.replace(l.find(from), from.size(), to);
    return l + body;
  };
  spill(p("bad.csv"), edited("\"features.dims\":\"128,512\"", "\"features.dims\":\"128,500\""));
  expect_error("mvg fit --features " + p("bad.csv") + out, {"bad.csv:1", "features.dims", "628", "640"}, never);
  spill(p("bad.csv"), edited("\"features.backbone\":\"resnet18\",", ""));
  expect_error("mvg fit --features " + p("bad.csv") + out, {"bad.csv:1", "features.backbone", "missing"}, never);
  spill(p("bad.csv"), edited("\"features.size\":\"32\"", "\"features.size\":\"64\""));
  expect_error("mvg score --model " + p("m.safetensors") + " --features " + p("bad.csv") + out,
               {"bad.csv", "features.size", "'64'", "m.safetensors", "'32'"}, never);

  // Model metadata: a size with trailing junk (std::stoi took "32x" as 32), a model from before
  // held-out thresholds.
  nn::Safetensors ms = nn::load_safetensors(p("m.safetensors"));
  auto meta = ms.metadata;
  meta["info.features.size"] = "32x";
  nn::save_safetensors(p("junk.safetensors"), {ms.tensors.begin(), ms.tensors.end()}, meta);
  expect_error("mvg score --model " + p("junk.safetensors") + " --images " + p("train") + out,
               {"junk.safetensors", "features.size", "'32x'", "integer"}, never);
  meta = ms.metadata;
  meta.erase("decision.threshold");
  nn::save_safetensors(p("old.safetensors"), {ms.tensors.begin(), ms.tensors.end()}, meta);
  expect_error("mvg score --model " + p("old.safetensors") + " --features " + p("f.csv") + out,
               {"old.safetensors", "decision.threshold", "mvg fit"}, never);
}

TEST_CASE("cli: image names with commas, quotes and line breaks survive features and mvg score CSVs", "[cli][gaussian]") {
  // Names went into the CSVs unquoted: `a,b.png` split into two fields, and the features CSV could
  // not be read back (one field too many) or, worse, shifted every feature by one column.
  const Scratch p("normad_test_cli_names");
  write_normals(p.dir / "imgs", 10, 100, 3);
  const std::vector<std::string> odd = {"a,b.png", "say \"hi\".png", "two\nlines.png", " lead.png"};
  int k = 0;
  for (const std::string& name : odd) {
    std::vector<unsigned char> px(24 * 24 * 3, (unsigned char)(90 + 10 * k++));
    test::write_image((p.dir / "imgs" / name).string(), 24, 24, 3, px);
  }
  const std::string pipe = resnet18_options(p, " --levels 2");
  test::Run r = run("features" + pipe + " --images " + p("imgs") + " --out " + p("feats.csv"));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const models::FeaturesCsv f = models::read_features_csv(p("feats.csv"));
  REQUIRE(f.table.labels.size() == 14);
  for (const std::string& name : odd)
    CHECK(std::count(f.table.labels.begin(), f.table.labels.end(), name) == 1);
  r = run("mvg fit --features " + p("feats.csv") + " --out " + p("m.st"));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  r = run("mvg score --model " + p("m.st") + " --images " + p("imgs") + " --out " + p("s.csv") + " --threads 2");
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const data::Csv s = data::read_csv(p("s.csv"));
  REQUIRE(s.rows.size() == 14);
  std::vector<std::string> names;
  for (const auto& row : s.rows) names.push_back(row[0]);
  for (const std::string& name : odd) CHECK(std::count(names.begin(), names.end(), name) == 1);
}
