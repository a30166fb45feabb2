// The command line under `mpiexec -np 2` (issue 18), against the same commands in one process:
//   - zeroshot --csv: the same per-batch ACR AUROCs within float summation order (the tolerance
//     is asserted and the largest difference printed), one results table (rank 0 prints);
//   - train --model acr-dsvdd: one model file, whose scores match the one-process model's;
//   - mvg fit on images (each rank extracts its share): the same model within 1e-6 relative;
//     mvg score: one merged scores file equal to one process's;
//   - a rank that fails on a bad image in its share ends the whole job: its message, a non-zero
//     exit code, no hang (a 120 s limit) and no output file;
//   - a command that does not share its work is refused under 2 ranks.
// Skipped (SKIPPED: line) where MPI or mpiexec was not built in (NORMAD_MPIEXEC unset); under
// CI=true that fails (CI installs Open MPI).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <json.hpp>

#include "data/csv.h"
#include "models/backbones.h"
#include "nn/safetensors.h"
#include "tensor/random.h"
#include "tests/cli_run.h"
#include "tests/helpers.h"
#include "tests/image_files.h"
#include "tests/scratch.h"

using namespace normad;
namespace fs = std::filesystem;

namespace {

#ifdef NORMAD_MPIEXEC
// Two ranks on this machine, shared memory between them (no network probing; no single-copy,
// which needs ptrace in containers), 120 s before a hang counts as a failure. Standard input from
// /dev/null: mpiexec forwards its stdin to rank 0 and would eat a caller's (a `while read` loop's).
test::Run mpi2(const std::string& args) {
  return test::run_command("OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none timeout 120 " +
                           std::string(NORMAD_MPIEXEC) + " -np 2 --oversubscribe --allow-run-as-root " + NORMAD_BIN +
                           " " + args + " < /dev/null");
}
#endif

bool mpi_or_skip() {
#ifdef NORMAD_MPIEXEC
  return true;
#else
  test::skip_or_fail("normad was built without MPI (libopenmpi-dev, NORMAD_MPI=ON) or mpiexec was not found");
  return false;
#endif
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

std::vector<double> score_column(const std::string& path) {
  std::vector<double> out;
  for (const auto& row : data::read_csv(path).rows) out.push_back(std::stod(row[1]));
  return out;
}

// Six classes of 60 rows: Gaussian blobs in 5-d, class k shifted along axis k mod 5.
void write_classes(const std::string& path) {
  Generator g(7);
  std::ofstream f(path);
  f << "a,b,c,d,e,class\n";
  for (int k = 0; k < 6; ++k)
    for (int i = 0; i < 60; ++i) {
      for (int j = 0; j < 5; ++j) f << (j == k % 5 ? 2.0 * (1 + k / 5) : 0.0) + g.normal1() << ",";
      f << "c" << k << "\n";
    }
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("mpi: zeroshot --csv and train --model acr-dsvdd on 2 ranks match one process", "[mpi][cli]") {
  if (!mpi_or_skip()) return;
#ifdef NORMAD_MPIEXEC
  test::Scratch p("normad_test_cli_mpi_zs");
  write_classes(p("t.csv"));
  const std::string zs = "zeroshot --csv " + p("t.csv") + " --label class --train-classes c0,c1,c2 --test-classes c3,c4,c5 "
                         "--iters 60 --batch-normals 40 --ratios 0.1,0.2 --threads 1 --json ";
  const test::Run one = test::run(zs + p("one.json")), two = mpi2(zs + p("two.json"));
  INFO(one.out << "\n---\n" << two.out);
  REQUIRE(one.rc == 0);
  REQUIRE(two.rc == 0);
  CHECK(count(two.out, "batch-mean L2") == 1);  // one results table: rank 0's
  CHECK(count(two.out, "Zero-shot on") == 1);
  const auto a = read_json(p("one.json"))["folds"][0]["batches"], b = read_json(p("two.json"))["folds"][0]["batches"];
  REQUIRE(a.size() == b.size());
  REQUIRE(a.size() >= 6);
  double acr = 0, stationary = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    acr = std::max(acr, std::abs(a[i]["acr"].get<double>() - b[i]["acr"].get<double>()));
    stationary = std::max(stationary, std::abs(a[i]["stationary"].get<double>() - b[i]["stationary"].get<double>()));
    CHECK(a[i]["knn"] == b[i]["knn"]);  // the same test batches
  }
  WARN("2 ranks vs 1 process, largest per-batch AUROC difference: ACR " << acr << ", stationary " << stationary);
  CHECK(acr <= 0.01);
  CHECK(stationary <= 0.03);

  // Checkpoints: rank 0 writes them, the run is identified with its rank count (the shares sum in
  // another order), every rank resumes from the file; a single process refuses it.
  const std::string ck = " --checkpoint " + p("ck.st") + " --checkpoint-every 30";
  const test::Run c2 = mpi2(zs + p("ck.json") + ck);
  INFO(c2.out);
  REQUIRE(c2.rc == 0);
  const nn::Safetensors st = nn::load_safetensors(p("ck.st"));
  CHECK(st.metadata.at("ckpt.run.ranks") == "2");
  CHECK(st.metadata.at("ckpt.step") == "60");
  CHECK(read_json(p("ck.json"))["folds"][0]["batches"] == b);  // checkpointing changes nothing
  const test::Run r2 = mpi2(zs + p("resumed.json") + " --resume " + p("ck.st"));
  INFO(r2.out);
  REQUIRE(r2.rc == 0);
  CHECK(count(r2.out, "resumed from") == 1);
  CHECK(read_json(p("resumed.json"))["folds"][0]["batches"] == b);
  const test::Run r1 = test::run(zs + p("single.json") + " --resume " + p("ck.st"));
  CHECK(r1.rc == 2);
  CHECK(r1.out.find("ranks") != std::string::npos);

  // train --model acr-dsvdd: one file from rank 0; scores within float order of one process's.
  const std::string tr = "train --model acr-dsvdd --data " + p("t.csv") + " --label class --train-classes c0,c1,c2,c3 "
                         "--iters 40 --threads 1 --out ";
  const test::Run t1 = test::run(tr + p("one.safetensors")), t2 = mpi2(tr + p("two.safetensors"));
  INFO(t1.out << "\n---\n" << t2.out);
  REQUIRE(t1.rc == 0);
  REQUIRE(t2.rc == 0);
  CHECK(count(t2.out, "wrote " + p("two.safetensors")) == 1);
  for (const std::string m : {"one", "two"})
    REQUIRE(test::run("score --model " + p(m + ".safetensors") + " --data " + p("t.csv") + " --out " + p(m + ".csv")).rc == 0);
  const auto s1 = score_column(p("one.csv")), s2 = score_column(p("two.csv"));
  REQUIRE(s1.size() == s2.size());
  double worst = 0;
  for (size_t i = 0; i < s1.size(); ++i) worst = std::max(worst, std::abs(s1[i] - s2[i]) / std::max(std::abs(s1[i]), 1e-3));
  WARN("train acr-dsvdd, 2 ranks vs 1 process: largest relative score difference " << worst);
  CHECK(worst < 1e-4);
#endif
}

TEST_CASE("mpi: mvg fit and score on 2 ranks (each its share of the images) match one process", "[mpi][cli][gaussian]") {
  if (!mpi_or_skip()) return;
#ifdef NORMAD_MPIEXEC
  test::Scratch p("normad_test_cli_mpi_mvg");
  {
    manual_seed(11);
    auto net = models::make_backbone("resnet18");
    nn::save_module(p("w.safetensors"), *net);
  }
  Generator g(3);
  for (int i = 0; i < 13; ++i) test::write_noisy_image(p("good/" + std::to_string(100 + i) + ".png"), 120, false, g);
  for (int i = 0; i < 5; ++i) test::write_noisy_image(p("new/" + std::to_string(i) + ".png"), 120, i % 2, g);
  const std::string pipe = " --backbone resnet18 --weights " + p("w.safetensors") + " --size 32 --levels 2,4 --threads 1";
  const std::string fit = "mvg fit --images " + p("good") + pipe + " --calibration 0.3 --out ";
  const test::Run f1 = test::run(fit + p("one.safetensors")), f2 = mpi2(fit + p("two.safetensors"));
  INFO(f1.out << "\n---\n" << f2.out);
  REQUIRE(f1.rc == 0);
  REQUIRE(f2.rc == 0);
  CHECK(count(f2.out, "fitted 2 level(s)") == 1);
  const nn::Safetensors m1 = nn::load_safetensors(p("one.safetensors")), m2 = nn::load_safetensors(p("two.safetensors"));
  REQUIRE(m1.tensors.size() == m2.tensors.size());
  for (const auto& [name, t] : m1.tensors) {
    INFO(name);
    REQUIRE(m2.tensors.count(name));
    float largest = 1;
    for (int64_t i = 0; i < t.numel(); ++i) largest = std::max(largest, std::abs(t.data()[i]));
    test::expect_close(m2.tensors.at(name), t, 1e-6 * largest, 1e-6, name);
  }
  // Scores: the 2-rank model in one process, and one merged file from 2 ranks.
  const std::string score = "mvg score --images " + p("new") + " --threads 1 --out ";
  REQUIRE(test::run(score + p("s1.csv") + " --model " + p("one.safetensors")).rc == 0);
  REQUIRE(test::run(score + p("s2.csv") + " --model " + p("two.safetensors")).rc == 0);
  const test::Run s = mpi2(score + p("s3.csv") + " --model " + p("one.safetensors"));
  INFO(s.out);
  REQUIRE(s.rc == 0);
  const auto a = score_column(p("s1.csv")), b = score_column(p("s2.csv")), c = score_column(p("s3.csv"));
  REQUIRE(a.size() == 5);
  REQUIRE(b.size() == 5);
  REQUIRE(c.size() == 5);
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(b[i] == Approx(a[i]).epsilon(1e-5));
    CHECK(c[i] == Approx(a[i]).epsilon(1e-5));  // rank 1's rows are in the file, in order
  }

  // A bad image in rank 1's share (the last file): the whole job ends with its message, no model.
  {
    std::ofstream bad(p("good/999.png"));
    bad << "not a png";
  }
  const test::Run e = mpi2(fit + p("bad.safetensors"));
  INFO(e.out);
  CHECK(e.rc != 0);
  CHECK(e.rc != 124);  // not the timeout: no rank hung
  CHECK(e.out.find("999.png") != std::string::npos);
  CHECK(e.out.find("rank 1 of 2") != std::string::npos);
  CHECK_FALSE(fs::exists(p("bad.safetensors")));
#endif
}

TEST_CASE("mpi: a command that does not share its work is refused under 2 ranks", "[mpi][cli]") {
  if (!mpi_or_skip()) return;
#ifdef NORMAD_MPIEXEC
  test::Scratch p("normad_test_cli_mpi_refuse");
  write_classes(p("t.csv"));
  const test::Run r = mpi2("train --model ntl --data " + p("t.csv") + " --out " + p("m.safetensors"));
  INFO(r.out);
  CHECK(r.rc == 2);
  CHECK(r.out.find("normad train with these options does not share its work between ranks") != std::string::npos);
  CHECK_FALSE(fs::exists(p("m.safetensors")));
  const test::Run m = mpi2("mvg eval --mvtec " + p("none") + " --category x --backbone resnet18 --weights " + p("w"));
  INFO(m.out);
  CHECK(m.rc == 2);
  CHECK(m.out.find("normad mvg eval with these options does not share its work") != std::string::npos);
#endif
}
