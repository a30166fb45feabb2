// Test helper: runs the normad binary (NORMAD_BIN, set by CMakeLists.txt) and returns its exit code
// and its stdout + stderr together.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace normad::test {

struct Run {
  int rc;
  std::string out;
};

inline Run run(const std::string& args) {
  std::string cmd = std::string(NORMAD_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace normad::test
