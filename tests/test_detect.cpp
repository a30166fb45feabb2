// The detector API (detect/, normad/normad.h) against the command line: for every model kind the
// API's scores equal `normad score` / `normad mvg score` bit for bit (the CLI writes "%.17g", which
// reads back to the same double), TableDetector::fit writes the same model file as `normad train`,
// decoded image buffers score as their files, Tensor inputs score as the same numbers in a table,
// and bad inputs are errors naming the shape or the file.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/image.h"
#include "models/backbones.h"
#include "nn/safetensors.h"
#include "normad/normad.h"
#include "tensor/parallel.h"
#include "tensor/random.h"
#include "tests/cli_run.h"
#include "tests/image_files.h"
#include "tests/scratch.h"

using namespace normad;
using normad::test::run;
namespace fs = std::filesystem;

namespace {

using test::Scratch;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A table of 4 classes (a, b, c, d) x 40 rows, 5 numeric columns and a text column `kind`
// (one-hot); class a is the normal class of the one-class models. Class k is centred at k.
void write_table(const std::string& path, uint64_t seed) {
  Generator g(seed);
  std::ofstream f(path);
  f << "x0,x1,kind,x2,x3,x4,class\n";
  const char* classes[] = {"a", "b", "c", "d"};
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 40; ++i) {
      for (int j = 0; j < 5; ++j) {
        f << (c + g.uniform1(-1, 1) * (1 + j * 0.2)) << ",";
        if (j == 1) f << (g.uniform1(0, 1) < 0.5 ? "red" : "blue") << ",";
      }
      f << classes[c] << "\n";
    }
}

// The score and prediction columns of a scores file (normad score or mvg score).
struct ScoresFile {
  std::vector<double> score;
  std::vector<int> prediction;
};
ScoresFile read_scores(const std::string& path) {
  const data::Csv csv = data::read_csv(path);
  const int64_t s = data::column_index(csv, "score"), p = data::column_index(csv, "prediction");
  REQUIRE(s >= 0);
  REQUIRE(p >= 0);
  ScoresFile out;
  for (const auto& row : csv.rows) {
    out.score.push_back(std::strtod(row[size_t(s)].c_str(), nullptr));
    out.prediction.push_back(std::stoi(row[size_t(p)]));
  }
  return out;
}

// Scores equal bit for bit (a NaN never equals: it fails too).
void check_same_bits(const std::vector<double>& api, const std::vector<double>& cli) {
  REQUIRE(api.size() == cli.size());
  int64_t differ = 0;
  for (size_t i = 0; i < api.size(); ++i) differ += !(api[i] == cli[i]);
  INFO("first scores: api " << api.front() << ", cli " << cli.front());
  CHECK(differ == 0);
}

}  // namespace

TEST_CASE("detect: every table model kind scores through the API as normad score does, bit for bit", "[detect]") {
  Scratch p("normad_test_detect_tables");
  write_table(p("train.csv"), 1);
  write_table(p("new.csv"), 2);
  // Small settings: a few epochs / iterations are enough to compare the two paths.
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"ntl", "--label class --normal a --epochs 4 --transformations 3"},
      {"dsvdd", "--label class --normal a --epochs 4 --widths 8,4"},
      {"acr-dsvdd", "--label class --iters 6 --batch 20"},
      {"acr-ntl", "--label class --iters 4 --batch 20"}};
  for (const auto& [kind, options] : kinds) {
    SECTION(kind) {
      const std::string model = p(kind + ".safetensors"), scores = p(kind + ".csv");
      const test::Run t = run("train --model " + kind + " --data " + p("train.csv") + " --one-hot kind " + options +
                              " --seed 3 --threads 2 --out " + model);
      INFO(t.out);
      REQUIRE(t.rc == 0);
      const test::Run s = run("score --model " + model + " --data " + p("new.csv") + " --threads 2 --out " + scores);
      INFO(s.out);
      REQUIRE(s.rc == 0);
      const ScoresFile cli = read_scores(scores);

      set_num_threads(2);
      std::unique_ptr<Detector> det = Detector::load(model);
      CHECK(det->kind() == kind);
      const Table rows = read_table(p("new.csv"));
      const std::vector<double> api = det->decision_function(rows);
      check_same_bits(api, cli.score);
      CHECK(det->predict(rows) == cli.prediction);
      // The threshold is the model file's, and predictions are the scores above it.
      const nn::Safetensors f = nn::load_safetensors(model);
      CHECK(det->threshold() == f.meta_number("normad.threshold"));

      // Fitting through the API with the CLI's options writes the same model file, byte for byte.
      TableFitOptions o;
      o.model = kind;
      o.label = "class";
      o.one_hot = {"kind"};
      o.seed = 3;
      if (kind == "ntl") o.normal = "a", o.train.epochs = 4, o.K = 3;
      if (kind == "dsvdd") o.normal = "a", o.train.epochs = 4, o.widths = {8, 4};
      if (kind == "acr-dsvdd") o.recipe.iters = 6, o.acr_batch = 20;
      if (kind == "acr-ntl") o.recipe.iters = 4, o.acr_batch = 20;
      const TableDetector fitted = TableDetector::fit(read_table(p("train.csv")), o);
      fitted.save(p("api.safetensors"));
      CHECK(slurp(p("api.safetensors")) == slurp(model));
      // A loaded model reports its threshold as the fit did, every field (describe() prints them).
      CHECK(det->threshold_report().describe() == fitted.threshold_report().describe());

      // save / load round trip: the same scores; infer_threshold moves only the threshold.
      TableDetector loaded = TableDetector::load(p("api.safetensors"));
      check_same_bits(loaded.decision_function(rows), cli.score);
      const Table normals = data::select_rows(read_table(p("train.csv")), "class", {"a"});
      const eval::ThresholdReport& r = loaded.infer_threshold(normals, 0.1);
      CHECK(r.rule == "reference");
      CHECK(r.rows == 40);
      loaded.save(p("moved.safetensors"));
      TableDetector moved = TableDetector::load(p("moved.safetensors"));
      CHECK(moved.threshold() == r.threshold);
      CHECK(moved.threshold_report().rows == 40);
      // ACR: the file says which batches the new threshold saw (40 rows in chunks of about 20).
      if (kind.rfind("acr", 0) == 0) CHECK(moved.metadata().at("acr.threshold_batches") == "20-20");
      check_same_bits(moved.decision_function(rows), cli.score);
    }
  }
}

TEST_CASE("detect: tensors in score as the same numbers in a table, and bad shapes and files are errors", "[detect]") {
  Scratch p("normad_test_detect_tensors");
  set_num_threads(2);
  Generator g(7);
  const Tensor normal = g.normal({120, 4}), fresh = g.normal({30, 4});
  TableFitOptions o;
  o.model = "dsvdd";
  o.train.epochs = 3;
  o.widths = {6, 3};
  const TableDetector det = TableDetector::fit(normal, o);
  TableDetector copy = det;
  const std::vector<double> s = copy.decision_function(fresh);
  REQUIRE(s.size() == 30);
  // The same numbers as text in a table with the model's column names.
  Table t = table_from_tensor(fresh);
  CHECK(t.header == std::vector<std::string>{"x0", "x1", "x2", "x3"});
  check_same_bits(copy.decision_function(t), s);
  // The default calibration rule held out 0.2 of the 120 rows.
  CHECK(det.threshold_report().rule == "calibration");
  CHECK(det.threshold_report().rows == 24);
  const std::vector<int> flagged = copy.predict(fresh);
  for (size_t i = 0; i < s.size(); ++i) CHECK(flagged[i] == (s[i] > copy.threshold() ? 1 : 0));

  // Wrong widths and ranks name the shape the model takes.
  CHECK_THROWS_WITH(copy.decision_function(g.normal({5, 3})), Catch::Contains("[N, 4]"));
  CHECK_THROWS_WITH(copy.decision_function(g.normal({5})), Catch::Contains("[5]"));
  // A file that is no model names itself.
  {
    std::ofstream f(p("junk.safetensors"));
    f << "not a model";
  }
  CHECK_THROWS_WITH(Detector::load(p("junk.safetensors")), Catch::Contains("junk.safetensors"));
  // A NaN in the rows is an error naming the row, never a score.
  Tensor bad = fresh.clone();
  bad.data()[4 * 2 + 1] = std::nanf("");
  CHECK_THROWS_WITH(copy.decision_function(bad), Catch::Contains("x1") && Catch::Contains("nan"));
  // ACR needs classes: fitting a tensor without them is an error naming the label.
  TableFitOptions acr;
  acr.model = "acr-dsvdd";
  CHECK_THROWS_WITH(TableDetector::fit(normal, acr), Catch::Contains("--label"));
}

TEST_CASE("detect: Gaussian-AD scores images through the API as normad mvg score does, decoded buffers as files",
          "[detect][gaussian]") {
  Scratch p("normad_test_detect_images");
  fs::create_directories(p("train"));
  fs::create_directories(p("test"));
  Generator g(5);
  auto image = [&](const std::string& path, int base, bool defect) { test::write_noisy_image(path, base, defect, g); };
  for (int i = 0; i < 12; ++i) image(p("train/" + std::to_string(100 + i) + ".png"), 90, false);
  std::vector<std::string> test_paths;
  for (int i = 0; i < 6; ++i) {
    test_paths.push_back(p("test/" + std::to_string(i) + ".png"));
    image(test_paths.back(), 90, i % 2 == 1);
  }
  manual_seed(11);
  nn::save_module(p("w.safetensors"), *models::make_backbone("resnet18"));
  const std::string pipe = " --backbone resnet18 --weights " + p("w.safetensors") + " --size 32 --levels 3,4 --batch 4";
  const test::Run fit = run("mvg fit" + pipe + " --images " + p("train") + " --threads 2 --out " + p("m.safetensors"));
  INFO(fit.out);
  REQUIRE(fit.rc == 0);
  const test::Run sc = run("mvg score --model " + p("m.safetensors") + " --images " + p("test") +
                           " --batch 4 --threads 2 --out " + p("s.csv"));
  INFO(sc.out);
  REQUIRE(sc.rc == 0);
  const ScoresFile cli = read_scores(p("s.csv"));

  set_num_threads(2);
  std::unique_ptr<Detector> any = Detector::load(p("m.safetensors"));
  CHECK(any->kind() == "gaussian-ad");
  ImageDetector det = ImageDetector::load(p("m.safetensors"), Device::CPU, "", 4);
  check_same_bits(det.score_images(test_paths), cli.score);  // list_images sorts: 0.png .. 5.png
  std::vector<Tensor> decoded;
  for (const std::string& path : test_paths) decoded.push_back(data::load_image_rgb(path));
  check_same_bits(det.score_decoded(decoded), cli.score);
  // The CLI's predictions are the API's scores above the API's threshold; the loaded threshold
  // report is the whole one the fit wrote (its expected rate included, as describe() prints it).
  for (size_t i = 0; i < cli.score.size(); ++i) CHECK(cli.prediction[i] == (cli.score[i] > det.threshold() ? 1 : 0));
  CHECK(det.threshold_report().rule == "calibration");
  CHECK(det.threshold_report().expected ==
        eval::conformal_expected_fpr(det.threshold_report().rows, det.threshold_report().target));
  // ImageDetector::fit with mvg fit's options (calibration 0.2, seed 0, fpr 0.05) writes mvg fit's
  // model file byte for byte, and scores right after the fit as the saved file does.
  models::FeatureSpec spec;
  spec.backbone = "resnet18", spec.weights = p("w.safetensors"), spec.levels = {3, 4};
  spec.prep.size = 32, spec.prep.filter = "bilinear", spec.batch = 4;
  std::vector<std::string> train_paths;
  for (int i = 0; i < 12; ++i) train_paths.push_back(p("train/" + std::to_string(100 + i) + ".png"));
  ImageDetector fitted = ImageDetector::fit(spec, train_paths, ImageFitOptions{});
  CHECK(fitted.fit_summary().rows == 12);
  CHECK(fitted.fit_summary().fit_rows == 10);  // round(0.2 * 12) = 2 held out
  check_same_bits(fitted.score_images(test_paths), cli.score);
  fitted.save(p("api.safetensors"));
  CHECK(slurp(p("api.safetensors")) == slurp(p("m.safetensors")));
  // The same from a features CSV (normad features) with a reference CSV: mvg fit --features.
  REQUIRE(run("features" + pipe + " --images " + p("train") + " --threads 2 --out " + p("f.csv")).rc == 0);
  REQUIRE(run("features" + pipe + " --images " + p("test") + " --threads 2 --out " + p("g.csv")).rc == 0);
  const test::Run ffit = run("mvg fit --features " + p("f.csv") + " --reference " + p("g.csv") + " --threads 2 --out " +
                             p("mf.safetensors"));
  INFO(ffit.out);
  REQUIRE(ffit.rc == 0);
  const models::FeaturesCsv f = models::read_features_csv(p("f.csv")), gref = models::read_features_csv(p("g.csv"));
  ImageDetector from_features = ImageDetector::fit_features(f, p("f.csv"), ImageFitOptions{}, &gref, p("g.csv"));
  from_features.save(p("apif.safetensors"));
  CHECK(slurp(p("apif.safetensors")) == slurp(p("mf.safetensors")));
  CHECK(from_features.threshold_report().rule == "reference");
  // Left to its defaults the reference is still a reference (nothing held out), and a detector
  // fitted on features with a pipeline scores images before it is ever saved, as its saved file does.
  ImageDetector defaults = ImageDetector::fit_features(f, p("f.csv"), ImageFitOptions{}, &gref);
  CHECK(defaults.threshold_report().rule == "reference");
  CHECK(defaults.fit_summary().fit_rows == 12);
  ImageDetector reloaded = ImageDetector::load(p("apif.safetensors"));  // batches of 16, as `defaults` (the bits follow the batch)
  check_same_bits(defaults.score_images(test_paths), reloaded.score_images(test_paths));
  // A bad option is an error before any work.
  ImageFitOptions bad;
  bad.fpr = 1.5;
  CHECK_THROWS_WITH(ImageDetector::fit(spec, train_paths, bad), Catch::Contains("fpr must be in (0, 1)"));
  // A decoded image of the wrong shape names itself.
  CHECK_THROWS_WITH(det.score_decoded({Tensor::zeros({24, 24})}), Catch::Contains("image 0"));
  // Features of the wrong width name the widths the model expects.
  CHECK_THROWS_WITH(det.decision_function(Tensor::zeros({2, 7})), Catch::Contains("expects"));
}
