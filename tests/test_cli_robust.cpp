// `normad` never loses a user's data or a long run's result on a bad output path (issue 15): every
// output is checked before any work starts. Each case here ran to the end of training and then
// failed, or overwrote the input, before cli::check_paths (apps/cli_util.h).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/csv.h"
#include "tests/cli_run.h"
#include "tests/helpers.h"

namespace {
std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
}  // namespace

TEST_CASE("cli robust: an output that would overwrite an input or cannot be written fails before training", "[cli][robust]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("normad_cli_robust_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string data = (dir / "t.csv").string();
  {
    std::ofstream f(data);
    f << "a,b\n";
    for (int i = 0; i < 30; ++i) f << i % 7 << "," << i % 5 << "\n";
  }
  const std::string original = slurp(data);
  fs::create_hard_link(data, dir / "hard.csv");
  fs::create_symlink(data, dir / "sym.csv");
  const std::string d = dir.string() + "/";
  // 10^6 epochs: a check made after training would time the test out instead of failing fast.
  const std::string train = "train --model dsvdd --epochs 1000000 --data " + data + " ";
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"--out " + data, "is the same file as --data"},
      {"--out " + d + "hard.csv", "is the same file as --data"},
      {"--out " + d + "sym.csv", "is the same file as --data"},
      {"--out " + d + "m.st --json " + d + "m.st", "--json and --out both name"},
      {"--out " + d + "m.st --json " + d + "./m.st", "--json and --out both name"},
      {"--out " + d + "m.st --profile " + d + "sym.csv", "--profile " + d + "sym.csv: is the same file as --data"},
      {"--out " + d + "missing/m.st", "directory " + d + "missing does not exist"},
      {"--out " + dir.string(), "is a directory"},
      {"--out /proc/normad_m.st", "cannot write in directory /proc"},
  };
  for (const Case& c : cases) {
    const normad::test::Run r = normad::test::run(train + c.args);
    INFO(c.args << "\n" << r.out);
    CHECK(r.rc == 2);
    CHECK_THAT(r.out, Catch::Contains(c.message));
    CHECK_THAT(r.out, !Catch::Contains("epoch"));
    CHECK(slurp(data) == original);
  }
  // score: the scores file may not be the model or the data.
  const std::string model = d + "m.st";
  normad::test::Run r = normad::test::run("train --model dsvdd --epochs 1 --data " + data + " --out " + model);
  REQUIRE(r.rc == 0);
  const std::string model_bytes = slurp(model);
  r = normad::test::run("score --model " + model + " --data " + data + " --out " + model);
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("--out " + model + ": is the same file as --model"));
  CHECK(slurp(model) == model_bytes);
  r = normad::test::run("score --model " + model + " --data " + data + " --out " + d + "sym.csv");
  CHECK(r.rc == 2);
  CHECK(slurp(data) == original);
  fs::remove_all(dir);
}

TEST_CASE("cli robust: numeric options are range-checked and mistyped commands get suggestions", "[cli][robust]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("normad_cli_args_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string data = (dir / "t.csv").string(), out = (dir / "m.st").string();
  {
    std::ofstream f(data);
    f << "a,b,label\n";
    for (int i = 0; i < 30; ++i) f << i % 7 << "," << i % 5 << "," << (i % 3 ? "n" : "m") << "\n";
  }
  const std::string train = "train --model ntl --epochs 1000000 --data " + data + " --out " + out + " ";
  struct Case {
    std::string args, message;
  };
  // Each was accepted before: nan reached the optimiser, -1 wrapped to 2^64 - 1 or meant "the
  // recipe's", 1000 threads started, --normal without --label trained on every row.
  const std::vector<Case> cases = {
      {train + "--lr nan", "--lr: must be a finite number, got 'nan'"},
      {train + "--weight-decay inf", "--weight-decay: must be a finite number"},
      {train + "--epochs 1e999", "--epochs: must be a finite number"},
      {train + "--seed -1", "--seed: must be a non-negative integer, got '-1'"},
      {train + "--threads 1000", "--threads: must be 0 (all cores) to"},
      {train + "--threads -2", "--threads: must be 0 (all cores) to"},
      {train + "--patience -1", "--patience: must be >= 0"},
      {train + "--normal n", "--normal n: needs --label"},
      {"zeroshot --iters 1000000 --lr -5", "--lr: must be a positive number"},
      {"zeroshot --iters 1000000 --task-normals -3", "--task-normals: must be >= 2"},
      {"zeroshot --iters 1000000 --tasks-per-pass -1", "--tasks-per-pass: must be >= 0"},
      {"zeroshot --iters 1000000 --csv " + data + " --label label --train-classes n --test-classes m --batch-normals 500",
       "--batch-normals: 500 is more than the 10 rows of test class 'm'"},
      {"trian --data x", "unknown command 'trian'; did you mean train?"},
      {"socre", "did you mean score?"},
      {"mvg fitt", "unknown command 'mvg fitt'; did you mean fit?"},
      {"xyzzy", "unknown command 'xyzzy' (commands: zeroshot, oneclass, eval, train, score, features, mvg, report)"},
  };
  for (const Case& c : cases) {
    const normad::test::Run r = normad::test::run(c.args);
    INFO(c.args << "\n" << r.out);
    CHECK(r.rc == 2);
    CHECK_THAT(r.out, Catch::Contains(c.message));
    CHECK(!fs::exists(out));
  }
  fs::remove_all(dir);
}

TEST_CASE("cli robust: --id and --ignore keep columns out of the features, and score writes the id", "[cli][robust]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("normad_cli_id_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string data = (dir / "t.csv").string(), model = (dir / "m.st").string(), scores = (dir / "s.csv").string();
  {
    std::ofstream f(data);
    f << "id,a,note,b,label\n";
    for (int i = 0; i < 40; ++i) f << "\"row " << i << ", x\"," << i % 7 << ",free text " << i << "," << i % 5 << "," << (i % 4 ? "n" : "m") << "\n";
  }
  // Without --id the identifier is read as a feature: an error naming the column and the options.
  normad::test::Run r = normad::test::run("train --model dsvdd --epochs 2 --data " + data +
                                          " --label label --normal n --ignore note --out " + model);
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("column 'id'") && Catch::Contains("--ignore / --id"));
  r = normad::test::run("train --model dsvdd --epochs 2 --data " + data + " --label label --normal n --id id --ignore note --out " +
                        model);
  INFO(r.out);
  REQUIRE(r.rc == 0);
  r = normad::test::run("score --model " + model + " --data " + data + " --out " + scores);
  REQUIRE(r.rc == 0);
  const normad::data::Csv s = normad::data::read_csv(scores);
  CHECK(s.header == std::vector<std::string>{"index", "id", "score", "prediction"});
  REQUIRE(s.rows.size() == 40);
  CHECK(s.rows[3][0] == "3");
  CHECK(s.rows[3][1] == "row 3, x");  // quoted on the way out, intact on the way back
  // A scoring file without the id column: scored, with a note; an explicit --id it lacks is an error.
  const std::string bare = (dir / "bare.csv").string();
  {
    std::ofstream f(bare);
    f << "a,b\n1,2\n3,4\n";
  }
  r = normad::test::run("score --model " + model + " --data " + bare + " --out " + scores);
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("has no column 'id'"));
  r = normad::test::run("score --model " + model + " --data " + bare + " --out " + scores + " --id a");
  CHECK(r.rc == 0);
  CHECK(normad::data::read_csv(scores).header == std::vector<std::string>{"index", "a", "score", "prediction"});
  // A column the model never saw can be the id: it is skipped like an ignored column.
  const std::string named = (dir / "named.csv").string();
  {
    std::ofstream f(named);
    f << "name,a,b\nfirst,1,2\nsecond,3,4\n";
  }
  r = normad::test::run("score --model " + model + " --data " + named + " --out " + scores + " --id name");
  INFO(r.out);
  CHECK(r.rc == 0);
  CHECK(normad::data::read_csv(scores).rows.at(1).at(1) == "second");
  r = normad::test::run("score --model " + model + " --data " + bare + " --out " + scores + " --id nope");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("--id: column 'nope' not found"));
  fs::remove_all(dir);
}
