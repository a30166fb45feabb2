// `normad` never loses a user's data or a long run's result on a bad output path (issue 15): every
// output is checked before any work starts. Each case here ran to the end of training and then
// failed, or overwrote the input, before cli::check_paths (apps/cli_util.h).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

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
