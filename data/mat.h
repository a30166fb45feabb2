// normad MAT-file reader: MATLAB level-5 .mat files, the format of the ODDS anomaly-detection tables
// (X = [n, d] features, y = n labels, 1 = outlier). Plain and miCOMPRESSED (zlib) elements, both byte
// orders.
// Format: 128-byte header (text, subsystem offset, version 0x0100, "IM"/"MI"), then tagged elements;
// a column-major MATLAB array a(i0, i1, ...) becomes the row-major Tensor element t[i0][i1]... (same shape).
// Tested by tests/test_mat.cpp (files built byte by byte, a scipy.io.savemat fixture, truncated and
// hostile files).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace normad::data {

// Largest zlib payload a miCOMPRESSED element may inflate to; bigger ones are an error, not an allocation.
inline constexpr uint64_t kMatMaxInflate = uint64_t(1) << 30;  // 1 GiB

// Reads every dense, real, numeric array (double, single, int8..uint64, logical) of a level-5 MAT-file,
// by variable name, as float32 in MATLAB's shape (always rank >= 2: a MATLAB vector is [n, 1] or [1, n]).
// Char, cell, struct, sparse and object arrays are skipped; a complex numeric array is an error.
// Example: x = [1 4; 2 5; 3 6] saved by MATLAB -> {"x": Tensor [3, 2] with data() = 1 4 2 5 3 6}.
// Errors (normad::Error) name the file: truncated or malformed elements, sizes that do not match.
std::map<std::string, Tensor> read_mat(const std::string& path,           // the .mat file
                                       uint64_t max_inflate = kMatMaxInflate);  // cap per compressed element

// One ODDS table (odds.cs.stonybrook.edu): n rows of d features and a 0/1 label per row.
struct OddsTable {
  Tensor X;            // [n, d] float32 features, row-major
  std::vector<int> y;  // n labels: 0 inlier, 1 outlier
};

// Reads variables "X" (2-d, [n, d]) and "y" ([n, 1] or [1, n], values 0 or 1) of an ODDS .mat file.
// Errors name the file and the variable: missing, not a dense numeric array, wrong rank, n mismatch,
// a label other than 0/1.
OddsTable read_odds(const std::string& path);

}  // namespace normad::data
