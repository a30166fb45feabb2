// `normad` command-line error handling: one clear line, exit code 2, no half-written output.
// The binary's path is compiled in (NORMAD_BIN, set by CMakeLists.txt).
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <json.hpp>

#include "data/csv.h"
#include "nn/safetensors.h"
#include "tensor/backend.h"
#include "tensor/comm.h"
#include "tensor/random.h"
#include "tests/cli_run.h"
#include "tests/tiny_fmnist.h"
#include "tests/helpers.h"

namespace {
using normad::test::Run;
using normad::test::write_tiny_fmnist;
using normad::test::run;
// A valid safetensors file with no normad metadata.
std::string write_plain_safetensors(const std::filesystem::path& dir) {
  const std::string p = (dir / "normad_cli_plain.safetensors").string();
  normad::nn::save_safetensors(p, {{"w", normad::Tensor::ones({2})}});
  return p;
}
}  // namespace

TEST_CASE("cli: --version names the CPU GEMM engine in use and the CUDA backend", "[cli]") {
  Run r = run("--version");
  INFO(r.out);
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("CPU GEMM " + normad::cpu_gemm_engine()));
  // built or not as this test binary was (a build with nvcc used to say "not built" without a GPU)
  CHECK_THAT(r.out, Catch::Contains(normad::cuda_backend_table() ? "CUDA backend built" : "CUDA backend not built"));
  // whether mpirun can start it as several ranks, and whether GPU ranks sum through NCCL (issue 18)
  CHECK_THAT(r.out, Catch::Contains(normad::built_with_mpi() ? "MPI built" : "MPI not built"));
  CHECK_THAT(r.out, Catch::Contains(normad::built_with_nccl() ? "NCCL built" : "NCCL not built"));
  // NORMAD_GEMM picks the engine; anything but eigen, openblas or native is an error, not a silent
  // default
  setenv("NORMAD_GEMM", "eigen", 1);
  r = run("--version");
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("CPU GEMM eigen"));
  setenv("NORMAD_GEMM", "native", 1);
  r = run("--version");
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("CPU GEMM native ("));
  setenv("NORMAD_GEMM", "OpenBLAS", 1);
  r = run("--version");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("NORMAD_GEMM") && Catch::Contains("'OpenBLAS' is not a GEMM engine"));
  unsetenv("NORMAD_GEMM");
}

TEST_CASE("cli: bad arguments and missing data exit 2 with one clear line", "[cli]") {
  CHECK(run("zeroshot --help").rc == 0);
  Run r = run("zeroshot --data nope");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("unknown data set 'nope'"));
  r = run("zeroshot --fold C");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("--fold"));
  r = run("zeroshot --ratios 0.1,x");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("'x'"));
  const std::string json = (std::filesystem::temp_directory_path() / "normad_cli_test.json").string();
  std::filesystem::remove(json);
  r = run("zeroshot --data-dir /nonexistent/dir --json " + json);
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("/nonexistent/dir"));
  CHECK_FALSE(std::filesystem::exists(json));
  // No temporary file either (write_atomic names it <path>.tmp<pid>).
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path()))
    CHECK(e.path().filename().string().rfind("normad_cli_test.json.tmp", 0) != 0);
  r = run("zeroshot --iters abc");
  CHECK(r.rc == 2);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);  // one line
  CHECK_THAT(r.out, Catch::Contains("normad: "));
  CHECK(run("zeroshot --ratios 0.1,0.1").rc == 2);
  CHECK(run("frobnicate").rc == 2);
  CHECK(run("").rc == 2);  // a subcommand is required
}

TEST_CASE("cli: zeroshot --csv runs the protocol on a table and reports errors naming the class or column", "[cli]") {
  // Six classes of 40 rows, Gaussian blobs in 4-d plus a categorical column.
  const auto dir = std::filesystem::temp_directory_path();
  const std::string csv = (dir / "normad_cli_zs.csv").string(), json = (dir / "normad_cli_zs.json").string();
  {
    normad::Generator g(3);
    std::ofstream f(csv);
    f << "a,b,c,d,kind,class\n";
    for (int k = 0; k < 6; ++k)
      for (int i = 0; i < 40; ++i) {
        for (int j = 0; j < 4; ++j) f << (j == k % 4 ? 3.0 * (k + 1) : 0.0) + g.normal1() << ",";
        f << (i % 2 ? "x" : "y") << ",c" << k << "\n";
      }
  }
  std::filesystem::remove(json);
  Run r = run("zeroshot --csv " + csv + " --label class --train-classes c0,c1,c2 --test-classes c3,c4,c5 "
              "--one-hot kind --iters 5 --batch-normals 20 --ratios 0.1,0.2 --threads 1 --json " + json);
  INFO(r.out);
  REQUIRE(r.rc == 0);
  std::ifstream jf(json);
  std::string text((std::istreambuf_iterator<char>(jf)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Catch::Contains("\"ratios\"") && Catch::Contains("\"batch_l2\"") && Catch::Contains("\"knn\""));
  {
    // --json reports the run's memory: the CPU allocator's tensor bytes (peak >= in use > 0 after a
    // run that trained a network) and the process's peak resident set, which includes them.
    const auto js = nlohmann::json::parse(text);
    REQUIRE(js.contains("memory"));
    const auto& cpu = js["memory"]["cpu"];
    CHECK(cpu["tensor_bytes_peak"].get<int64_t>() >= cpu["tensor_bytes_in_use"].get<int64_t>());
    CHECK(cpu["tensor_bytes_peak"].get<int64_t>() > 100000);  // the task batches alone are larger
    CHECK(js["memory"]["process_peak_rss_bytes"].get<int64_t>() > cpu["tensor_bytes_peak"].get<int64_t>());
  }
  // ACR-NTL on the same table (a few iterations: the path runs end to end).
  r = run("zeroshot --csv " + csv + " --label class --train-classes c0,c1,c2 --test-classes c3,c4,c5 "
          "--one-hot kind --model ntl --iters 2 --batch-normals 20 --ratios 0.2 --threads 1");
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("ACR-NTL"));
  CHECK(run("zeroshot --data fmnist --model ntl").rc == 2);  // FMNIST-ZS is ACR-DSVDD only
  // recipes: auto keeps the paper's recipe on a table (no augmentation), named in the JSON
  CHECK_THAT(text, Catch::Contains("\"recipe\": \"paper\"") && Catch::Contains("\"task_aug\": \"none\""));
  r = run("zeroshot --csv " + csv + " --label class --train-classes c0,c1,c2 --test-classes c3,c4,c5 --recipe best");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("recipe 'best' is unknown"));
  CHECK(run("zeroshot --iters -3").rc == 2);
  r = run("zeroshot --task-normals 1");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("--task-normals"));
  CHECK(run("zeroshot --lr 0").rc == 2);
  r = run("zeroshot --csv " + csv + " --label class --train-classes c0,c1,c2 --test-classes c3,c4,c5 --one-hot kind "
          "--task-aug dihedral-invert");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("is for images"));
  r = run("zeroshot --csv " + csv + " --label class --train-classes c0,c9 --test-classes c3,c4 --one-hot kind");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("'c9'") && Catch::Contains("c0, c1"));
  r = run("zeroshot --csv " + csv + " --label class --train-classes c0,c1 --test-classes c3,c4");
  CHECK(r.rc == 2);  // 'kind' is text: without --one-hot it is an error naming file, line and column
  CHECK_THAT(r.out, Catch::Contains("normad_cli_zs.csv:2") && Catch::Contains("'kind'"));
  r = run("zeroshot --csv " + csv + " --label nope --train-classes c0,c1 --test-classes c3,c4");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("'nope'"));
  r = run("zeroshot --csv " + csv + " --label class --train-classes c0,c1 --test-classes c1,c4 --one-hot kind");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("both a training and a test class"));
}

TEST_CASE("cli: oneclass runs Deep SVDD per normal class and reports bad classes and options", "[cli]") {
  const auto dir = std::filesystem::temp_directory_path() / "normad_cli_fmnist";
  const std::string data = write_tiny_fmnist(dir, 30, 10), js = (dir / "oneclass.json").string();
  Run r = run("oneclass --data-dir " + data + " --classes 1,3 --epochs 2 --ae-epochs 2 --threads 1 --json " + js);
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("class 3") != std::string::npos);
  std::ifstream f(js);
  auto j = nlohmann::json::parse(f);
  REQUIRE(j["classes"].size() == 2);
  CHECK(j["classes"][1]["class"] == 3);
  for (auto& c : j["classes"]) CHECK((c["auroc"].get<double>() >= 0 && c["auroc"].get<double>() <= 1));
  CHECK(j["mean_auroc"].get<double>() ==
        Approx((j["classes"][0]["auroc"].get<double>() + j["classes"][1]["auroc"].get<double>()) / 2));
  // the same seed gives the same numbers; a class alone gives what it gave in the pair
  const std::string js1 = (dir / "oneclass1.json").string();
  REQUIRE(run("oneclass --data-dir " + data + " --classes 3 --epochs 2 --ae-epochs 2 --threads 1 --json " + js1).rc == 0);
  std::ifstream f1(js1);
  CHECK(nlohmann::json::parse(f1)["classes"][0]["auroc"] == j["classes"][1]["auroc"]);

  r = run("oneclass --data-dir " + data + " --classes 2 --epochs 1 --no-pretrain --threads 1");
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("pretraining off"));
  r = run("oneclass --data-dir " + data + " --classes 12");
  CHECK(r.rc == 2);
  CHECK(r.out.find("--classes: '12'") != std::string::npos);
  r = run("oneclass --data-dir " + data + " --preprocess zca");
  CHECK(r.rc == 2);
  CHECK(r.out.find("zca") != std::string::npos);
  r = run("oneclass --data-dir /nonexistent/dir");
  CHECK(r.rc == 2);
  CHECK(r.out.find("/nonexistent/dir") != std::string::npos);
  CHECK(run("oneclass --data-dir " + data + " --epochs 0").rc == 2);
}

TEST_CASE("cli: eval prints AUROC, AP and F1 and rejects mismatched files", "[cli]") {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string sc = (dir / "normad_cli_scores.csv").string(), lab = (dir / "normad_cli_labels.csv").string();
  std::ofstream(sc) << "index,score,label\n0,0.9,1\n1,0.1,0\n2,0.4,0\n3,0.8,1\n4,0.3,0\n";
  std::ofstream(lab) << "y,kind\n1,bad\n0,ok\n0,ok\n1,bad\n0,ok\n";
  Run r = run("eval --scores " + sc + " --labels " + lab + " --label y");
  INFO(r.out);
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("AUROC   1.0000") && Catch::Contains("AP      1.0000"));
  r = run("eval --scores " + sc + " --labels " + lab + " --label kind --normal ok");
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("AUROC   1.0000"));
  r = run("eval --scores " + sc + " --labels " + lab + " --label kind");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("'bad' in column 'kind' is not 0 or 1"));
  // A --json path that cannot be written: exit 2 naming it, and no temporary file left behind.
  r = run("eval --scores " + sc + " --labels " + lab + " --label y --json /nonexistent_dir/out.json");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("/nonexistent_dir/out.json"));
  std::ofstream(lab) << "y\n1\n0\n";
  r = run("eval --scores " + sc + " --labels " + lab + " --label y");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("has 2 rows"));
}

TEST_CASE("cli: train --model ntl then score writes one row per input, in order, and rejects other files", "[cli]") {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string train = (dir / "normad_cli_ntl_train.csv").string(), test = (dir / "normad_cli_ntl_test.csv").string();
  const std::string model = (dir / "normad_cli_ntl.safetensors").string(), scores = (dir / "normad_cli_ntl_scores.csv").string();
  {
    normad::Generator g(5);
    std::ofstream tr(train), te(test);
    tr << "a,b,c,kind\n";
    te << "a,b,c,kind\n";
    for (int i = 0; i < 60; ++i) {
      const float t = g.normal1();
      tr << t << "," << 2 * t + 0.1f * g.normal1() << "," << -t << ",normal\n";
    }
    for (int i = 0; i < 7; ++i) te << g.normal1() << "," << g.normal1() << "," << g.normal1() << ",odd\n";
  }
  Run r = run("train --model ntl --data " + train + " --label kind --normal normal --epochs 3 --transformations 4 --out " + model);
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const std::string js = (dir / "normad_cli_ntl_score.json").string();
  r = run("score --model " + model + " --data " + test + " --out " + scores + " --json " + js);
  REQUIRE(r.rc == 0);
  std::ifstream jf(js);
  std::string jtext((std::istreambuf_iterator<char>(jf)), std::istreambuf_iterator<char>());
  CHECK_THAT(jtext, Catch::Contains("\"rows\": 7") && Catch::Contains("\"threshold\""));
  std::ifstream f(scores);
  std::string line;
  std::getline(f, line);
  CHECK(line == "index,score,prediction");
  int rows = 0;
  while (std::getline(f, line)) {
    CHECK(line.rfind(std::to_string(rows) + ",", 0) == 0);  // input order
    ++rows;
  }
  CHECK(rows == 7);
  // The same flow with Deep SVDD (bias-free MLP, centre stored as "c").
  r = run("train --model dsvdd --data " + train + " --label kind --normal normal --epochs 3 --widths 8,4 --out " + model);
  INFO(r.out);
  REQUIRE(r.rc == 0);
  r = run("score --model " + model + " --data " + test + " --out " + scores);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("scored 7 rows"));
  CHECK(run("train --model dsvdd --data " + train + " --widths 8,x --out " + model).rc == 2);
  // A safetensors file that is not a normad model, and a missing one.
  r = run("score --model " + write_plain_safetensors(dir) + " --data " + test + " --out " + scores);
  CHECK(r.rc == 2);
  r = run("score --model " + train + " --data " + test + " --out " + scores);
  CHECK(r.rc == 2);
  r = run("score --model /nonexistent.safetensors --data " + test + " --out " + scores);
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("/nonexistent.safetensors"));
  r = run("train --model ntl --data " + train + " --label kind --normal nobody --out " + model);
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("'nobody'"));
}

TEST_CASE("cli: train --model acr-dsvdd and acr-ntl on labelled classes, then batch-level score", "[cli]") {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string csv = (dir / "normad_cli_acr.csv").string(), model = (dir / "normad_cli_acr.safetensors").string();
  const std::string scores = (dir / "normad_cli_acr_scores.csv").string();
  {
    normad::Generator g(4);
    std::ofstream f(csv);
    f << "a,b,c,cls\n";
    for (int k = 0; k < 4; ++k)
      for (int i = 0; i < 30; ++i) f << 3.0 * k + g.normal1() << "," << g.normal1() << "," << -k + g.normal1() << ",k" << k << "\n";
  }
  for (const char* kind : {"acr-dsvdd", "acr-ntl"}) {
    Run r = run(std::string("train --model ") + kind + " --data " + csv + " --label cls --train-classes k0,k1,k2 --iters 2 --out " + model);
    INFO(kind << "\n" << r.out);
    REQUIRE(r.rc == 0);
    r = run("score --model " + model + " --data " + csv + " --out " + scores + " --batch 50");
    REQUIRE(r.rc == 0);
    CHECK_THAT(r.out, Catch::Contains("scored 120 rows"));
  }
  CHECK(run("train --model acr-dsvdd --data " + csv + " --out " + model).rc == 2);  // needs --label
  CHECK(run("train --model acr-svm --data " + csv + " --out " + model).rc == 2);
  // the recipe and task augmentation are recorded in the model file (tables: auto is paper)
  Run r = run("train --model acr-dsvdd --data " + csv + " --label cls --iters 2 --out " + model);
  REQUIRE(r.rc == 0);
  auto meta = normad::nn::load_safetensors(model).metadata;
  CHECK(meta.at("acr.recipe") == "paper");
  CHECK(meta.at("acr.task_aug") == "none");
  REQUIRE(run("train --model acr-dsvdd --data " + csv + " --label cls --iters 2 --recipe few-class --out " + model).rc == 0);
  CHECK(normad::nn::load_safetensors(model).metadata.at("acr.task_aug") == "permute");
  r = run("train --model acr-dsvdd --data " + csv + " --label cls --iters 2 --task-aug dihedral --out " + model);
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("'dihedral' is unknown"));
}

TEST_CASE("cli: score reproduces the saved model's own scores, for every model kind", "[cli]") {
  // Oracle: with --reference R, train sets the threshold to the conformal quantile (the k-th smallest,
  // k = ceil((n + 1)(1 - fpr))) of the in-memory model's scores of R. `score` on R with the saved
  // file must give scores whose k-th smallest is that threshold exactly (float32; same threads).
  // A `score` that skipped loading weights, or scored with other preprocessing, fails here.
  const auto dir = std::filesystem::temp_directory_path() / "normad_cli_values";
  std::filesystem::create_directories(dir);
  const std::string csv = (dir / "t.csv").string(), model = (dir / "m.safetensors").string();
  const std::string scores = (dir / "s.csv").string();
  {
    normad::Generator g(9);
    std::ofstream f(csv);
    f << "a,b,c,d,cls\n";
    for (int k = 0; k < 3; ++k)
      for (int i = 0; i < 60; ++i)
        f << 2.0 * k + g.normal1() << "," << g.normal1() << "," << -k + g.normal1() << "," << g.normal1() * g.normal1() << ",k" << k << "\n";
  }
  for (const std::string kind : {"ntl", "dsvdd", "acr-dsvdd", "acr-ntl"}) {
    INFO(kind);
    const bool acr = kind.rfind("acr", 0) == 0;
    const std::string train = "train --model " + kind + " --data " + csv + (acr ? " --label cls --iters 3" : " --epochs 3") +
                              " --reference " + csv + " --fpr 0.05 --threads 1 --out " + model;
    // One-class models see the label column as a feature unless told: keep only numeric columns.
    Run r = run(acr ? train : train + " --label cls --normal k0");
    INFO(r.out);
    REQUIRE(r.rc == 0);
    r = run("score --model " + model + " --data " + csv + " --threads 1 --out " + scores);
    REQUIRE(r.rc == 0);
    const normad::data::Csv out = normad::data::read_csv(scores);
    std::vector<float> s;
    for (const auto& row : out.rows) s.push_back(static_cast<float>(std::stod(row[1])));
    // One-class --reference keeps the rows with label --normal: the k0 rows (the first 60).
    if (!acr) s.resize(60);
    std::sort(s.begin(), s.end());
    const size_t n = s.size(), k = static_cast<size_t>(std::ceil((n + 1) * 0.95 - 1e-9));
    const double thr = std::stod(normad::nn::load_safetensors(model).metadata.at("normad.threshold"));
    CHECK(s.at(k - 1) == static_cast<float>(thr));
    CHECK(s.front() < s.back());  // not a constant model
  }
}

TEST_CASE("cli: eval's AUROC and AP against values computed by hand, ties included", "[cli]") {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string sc = (dir / "normad_cli_hand_scores.csv").string(), lab = (dir / "normad_cli_hand_labels.csv").string();
  std::ofstream(sc) << "index,score\n0,0.9\n1,0.1\n2,0.4\n3,0.4\n4,0.3\n";
  std::ofstream(lab) << "y\n1\n0\n1\n0\n0\n";
  // AUROC: positives 0.9 and 0.4 against negatives 0.1, 0.4, 0.3: (3 + 2 + 0.5) / 6 = 0.9167.
  // AP: at 0.9 P = 1, R = 1/2; at 0.4 P = 2/3, R = 1: 1/2 * 1 + 1/2 * 2/3 = 0.8333.
  Run r = run("eval --scores " + sc + " --labels " + lab + " --label y");
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("AUROC   0.9167") && Catch::Contains("AP      0.8333"));
}

// --device: every training and scoring subcommand runs on another backend and gives the CPU's
// results. Device::Reference stands in for a GPU here: under NORMAD_STRICT_DEVICE=1 its tensors
// refuse host reads as CUDA tensors do, so a path that would stop on a GPU (a data() on a model's
// tensor) fails this test on a machine without one. Values: the reference accumulates in double,
// the CPU in float, so scores agree to rounding (1e-4 relative) and AUROCs within 0.02.
namespace {
struct StrictDevice {  // NORMAD_STRICT_DEVICE=1 for the commands this test runs
  StrictDevice() { setenv("NORMAD_STRICT_DEVICE", "1", 1); }
  ~StrictDevice() { unsetenv("NORMAD_STRICT_DEVICE"); }
};
std::vector<double> scores_of(const std::string& path) {
  std::vector<double> out;
  for (const auto& row : normad::data::read_csv(path).rows) out.push_back(std::stod(row[1]));
  return out;
}
double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]) / std::max(1e-6, std::fabs(a[i])));
  return m;
}
}  // namespace

TEST_CASE("cli: --device runs zeroshot and oneclass and train and score on another backend with the CPU results", "[cli]") {
  // Bad devices: one line naming the accepted names or why the device is missing; --tf32 needs cuda.
  Run r = run("zeroshot --device tpu");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("--device") && Catch::Contains("cuda"));
  if (!normad::device_available(normad::Device::CUDA)) {
    r = run("zeroshot --device cuda");
    CHECK(r.rc == 2);
    CHECK_THAT(r.out, Catch::Contains("--device cuda: "));
  }
  r = run("zeroshot --tf32");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("--tf32"));

  StrictDevice strict;
  const auto dir = std::filesystem::temp_directory_path() / "normad_cli_device";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto p = [&](const std::string& name) { return (dir / name).string(); };
  const std::string csv = p("blobs.csv");
  {
    normad::Generator g(5);
    std::ofstream f(csv);
    f << "a,b,c,d,kind,class\n";
    for (int k = 0; k < 6; ++k)
      for (int i = 0; i < 40; ++i) {
        for (int j = 0; j < 4; ++j) f << (j == k % 4 ? 2.0 * (k + 1) : 0.0) + g.normal1() << ",";
        f << (i % 2 ? "x" : "y") << ",c" << k << "\n";
      }
  }
  // zeroshot (ACR-DSVDD on the table): the same AUROCs per ratio on both devices.
  std::map<std::string, nlohmann::json> zs;
  for (const std::string dev : {"cpu", "reference"}) {
    r = run("zeroshot --csv " + csv + " --label class --train-classes c0,c1,c2 --test-classes c3,c4,c5 --one-hot kind "
            "--iters 5 --batch-normals 20 --ratios 0.1,0.2 --threads 1 --device " + dev + " --json " + p("zs_" + dev + ".json"));
    INFO(dev << "\n" << r.out);
    REQUIRE(r.rc == 0);
    std::ifstream jf(p("zs_" + dev + ".json"));
    zs[dev] = nlohmann::json::parse(jf);
  }
  REQUIRE(zs["cpu"]["ratios"].size() == 2);
  CHECK(zs["cpu"]["device"] == "cpu");
  CHECK(zs["reference"]["device"] == "reference");
  for (size_t i = 0; i < 2; ++i)
    CHECK(zs["reference"]["ratios"][i]["acr"].get<double>() ==
          Approx(zs["cpu"]["ratios"][i]["acr"].get<double>()).margin(0.02));
  // train on the reference device, score on both: model files do not depend on the device.
  for (const std::string model : {"ntl", "dsvdd", "acr-dsvdd", "acr-ntl"}) {
    const std::string rows = model.rfind("acr", 0) == 0 ? " --label class --iters 3" : " --label class --normal c0 --epochs 3";
    r = run("train --model " + model + " --data " + csv + " --one-hot kind" + rows + " --threads 1 --device reference --out " +
            p(model + ".safetensors"));
    INFO(model << "\n" << r.out);
    REQUIRE(r.rc == 0);
    for (const std::string dev : {"cpu", "reference"})
      REQUIRE(run("score --model " + p(model + ".safetensors") + " --data " + csv + " --threads 1 --device " + dev +
                  " --out " + p(model + "_" + dev + ".csv")).rc == 0);
    CHECK(max_rel_diff(scores_of(p(model + "_cpu.csv")), scores_of(p(model + "_reference.csv"))) < 1e-4);
  }
  // oneclass (LeNet autoencoder, then Deep SVDD) on a tiny Fashion-MNIST look-alike.
  const std::string data = write_tiny_fmnist(dir / "fmnist", 20, 6);
  std::map<std::string, double> auc;
  for (const std::string dev : {"cpu", "reference"}) {
    r = run("oneclass --data-dir " + data + " --classes 2 --epochs 1 --ae-epochs 1 --threads 1 --device " + dev +
            " --json " + p("oc_" + dev + ".json"));
    INFO(dev << "\n" << r.out);
    REQUIRE(r.rc == 0);
    std::ifstream jf(p("oc_" + dev + ".json"));
    auc[dev] = nlohmann::json::parse(jf)["mean_auroc"].get<double>();
  }
  CHECK(auc["reference"] == Approx(auc["cpu"]).margin(0.02));
  std::filesystem::remove_all(dir);
}

TEST_CASE("cli: --profile writes a Chrome trace of the run's ops and prints the per-op table", "[cli][profile]") {
  const auto dir = std::filesystem::temp_directory_path() / "normad_cli_profile";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string csv = (dir / "rows.csv").string(), trace = (dir / "trace.json").string();
  {
    normad::Generator g(6);
    std::ofstream f(csv);
    f << "a,b,c\n";
    for (int i = 0; i < 60; ++i) f << g.normal1() << "," << g.normal1() << "," << g.normal1() << "\n";
  }
  Run r = run("train --model dsvdd --data " + csv + " --epochs 2 --contamination 0.1 --threads 1 --out " +
              (dir / "m.safetensors").string() + " --profile " + trace);
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("op profile: wall") && Catch::Contains("matmul") && Catch::Contains("GFLOP/s"));
  std::ifstream f(trace);
  const auto js = nlohmann::json::parse(f);
  REQUIRE(js["traceEvents"].size() > 10);
  CHECK(js["traceEvents"][0]["ph"] == "X");
  // a failed run writes no trace
  const std::string trace2 = (dir / "trace2.json").string();
  CHECK(run("train --model dsvdd --data " + (dir / "missing.csv").string() + " --out " + (dir / "m2.safetensors").string() +
            " --profile " + trace2).rc == 2);
  CHECK_FALSE(std::filesystem::exists(trace2));
  // a trace that cannot be written is refused before the run (no model file either)
  r = run("train --model dsvdd --data " + csv + " --epochs 2 --contamination 0.1 --out " + (dir / "m3.safetensors").string() +
          " --profile " + (dir / "no/such/dir/t.json").string());
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("--profile") && Catch::Contains("does not exist"));
  CHECK_FALSE(std::filesystem::exists(dir / "m3.safetensors"));
  std::filesystem::remove_all(dir);
}
