// embed: a C++ program that uses normad as a library. It loads a normad model file (any kind:
// `normad train` or `normad mvg fit` writes them), scores a CSV table with the model's own
// preprocessing and threshold, and prints the rows above the threshold.
//   embed MODEL.safetensors DATA.csv
// Build it against an installed normad (examples/embed/CMakeLists.txt: find_package(normad)), or
// with pkg-config: g++ main.cpp $(pkg-config --cflags --libs normad) -o embed
#include <cstdio>
#include <exception>

#include <normad/normad.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL.safetensors DATA.csv\n", argv[0]);
    return 2;
  }
  try {
    // The right detector for the file: a table model (ntl, dsvdd, acr-dsvdd, acr-ntl) or Gaussian-AD.
    std::unique_ptr<normad::Detector> detector = normad::Detector::load(argv[1]);
    const normad::Table rows = normad::read_table(argv[2]);  // CSV or .mat
    const std::vector<double> scores = detector->decision_function(rows);  // higher = more anomalous
    int flagged = 0;
    for (size_t i = 0; i < scores.size(); ++i)
      if (scores[i] > detector->threshold()) {
        std::printf("row %zu: score %.6g\n", i, scores[i]);
        ++flagged;
      }
    std::printf("%s: %d of %zu rows above the threshold %.6g (%s)\n", detector->kind().c_str(), flagged,
                scores.size(), detector->threshold(), detector->threshold_report().describe().c_str());
  } catch (const std::exception& e) {  // normad::Error: names the file, the field or the shape
    std::fprintf(stderr, "embed: %s\n", e.what());
    return 1;
  }
  return 0;
}
