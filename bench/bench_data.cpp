// Data-loading benchmarks: reading a CSV as wide as a user's (issue 15: a 50 MB single-line header
// took over a minute, 80 000 columns 52 s, both from all-pairs name comparisons). Each case parses
// a CSV of W numeric columns (a header and 2 rows), fits the preprocessing and applies it, as
// `normad train --data` does; the counter is columns per second, which must stay flat as W grows
// 8x and 64x (linear time). The check that results are right is tests/test_csv.cpp's.
//
// Shapes: W columns.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "data/csv.h"

using namespace normad;

namespace {

// "c0,c1,...\n" then two rows of small integers.
std::string wide_csv(int64_t width) {
  std::string text;
  for (int64_t j = 0; j < width; ++j) text += (j ? ",c" : "c") + std::to_string(j);
  for (int r = 0; r < 2; ++r) {
    text += '\n';
    for (int64_t j = 0; j < width; ++j) text += (j ? "," : "") + std::to_string((j + r) % 10);
  }
  return text + '\n';
}

void bm_csv_wide(benchmark::State& st, int64_t width) {
  const std::string text = wide_csv(width);
  for (auto _ : st) {
    data::Csv csv = data::parse_csv(text, "wide.csv");
    data::Preprocess p = data::Preprocess::fit(csv, {});
    data::Table t = p.apply(csv);
    benchmark::DoNotOptimize(t.x.data());
  }
  st.counters["columns"] = benchmark::Counter(double(width), benchmark::Counter::kIsIterationInvariantRate);
}

int register_all() {
  for (int64_t width : {10000, 80000, 640000})
    benchmark::RegisterBenchmark(("csv_wide/w" + std::to_string(width)).c_str(),
                                 [width](benchmark::State& st) { bm_csv_wide(st, width); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  return 0;
}
const int registered = register_all();

}  // namespace
