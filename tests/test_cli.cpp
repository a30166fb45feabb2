// `normad` command-line error handling: one clear line, exit code 2, no half-written output.
// The binary's path is compiled in (NORMAD_BIN, set by CMakeLists.txt).
#include <sys/wait.h>

#include <cstdio>
#include <fstream>

#include "tests/helpers.h"

namespace {
struct Run {
  int rc;
  std::string out;
};
Run run(const std::string& args) {
  std::string cmd = std::string(NORMAD_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}
}  // namespace

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
  CHECK_FALSE(std::filesystem::exists(json + ".tmp"));
  CHECK(run("frobnicate").rc == 2);
  CHECK(run("").rc == 2);  // a subcommand is required
}
