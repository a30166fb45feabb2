// Test helper: a fresh temporary directory, removed at the end; p("f.csv") names a file in it.
#pragma once

#include <filesystem>
#include <string>

namespace normad::test {

struct Scratch {
  std::filesystem::path dir;
  explicit Scratch(const std::string& name) : dir(std::filesystem::temp_directory_path() / name) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~Scratch() { std::filesystem::remove_all(dir); }
  std::string operator()(const std::string& file) const { return (dir / file).string(); }
};

}  // namespace normad::test
