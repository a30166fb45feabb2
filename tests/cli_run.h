// Test helper: runs the normad binary (NORMAD_BIN, set by CMakeLists.txt), or any command line, and
// returns its exit code and its stdout + stderr together.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace normad::test {

struct Run {
  int rc;
  std::string out;
};

// Runs a shell command line (stdout and stderr together).
inline Run run_command(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

inline Run run(const std::string& args) { return run_command(std::string(NORMAD_BIN) + " " + args); }

}  // namespace normad::test
