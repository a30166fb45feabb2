// normad CSV reader for labelled tables: a header row, one label column chosen by name, every other
// column a numeric feature or a one-hot encoded category; optional standardisation fitted on training rows.
// Format: RFC 4180 with leniencies: ',' separator, optional "quoted" fields ("" is a quote), CRLF or
// LF, optional final newline, trailing empty lines ignored, spaces and tabs around unquoted fields
// dropped (a quoted field keeps them). Numbers are read in double: any finite value float32 can hold
// (tiny ones become denormals or zero), standardised in double before rounding to float32.
// Math: x' = (x - mean) / std per feature, population std fitted on the training rows.
// Tested by tests/test_csv.cpp (files written by the test, every error message, exact metadata round trip).
//
// Shape legend: N rows, F features (after one-hot). Worked example: a 100-row file with header
//   age,color,score,class   and color in {red, blue}
// read with label "class" and one_hot {"color"} gives x [100, 4] with columns
//   age, color=blue, color=red, score   (categories sorted, placed where `color` was) and 100 string labels.
//
// Typical use (train, then score new data with the statistics stored in the model file):
//   data::Csv train_csv = data::read_csv("train.csv");
//   data::Preprocess pre = data::Preprocess::fit(train_csv, {.label = "class", .one_hot = {"color"},
//                                                            .standardise = true});
//   data::Table train = pre.apply(train_csv);
//   metadata = pre.to_metadata();                       // ... later, in another process:
//   data::Table test = data::Preprocess::from_metadata(metadata).apply(data::read_csv("test.csv"));
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace normad::data {

// A parsed CSV file, cells still strings. Every row has header.size() fields; names are unique.
struct Csv {
  std::string path;                             // file name used in error messages
  std::vector<std::string> header;              // column names from the first row
  std::vector<std::vector<std::string>> rows;   // rows[i][j]: row i, column j
  std::vector<int64_t> lines;                   // 1-based line on which row i starts
};

// Reads and parses `path`. Errors (normad::Error) name the file and, where it applies, the line:
// missing file, empty file (no header), duplicate column names, a row with the wrong number of
// fields, an unterminated quote. A UTF-8 byte order mark before the header is skipped.
// A level-5 MAT-file (recognised by content, not by name: ODDS's X and y, data/mat.h read_odds)
// reads as the table with columns x0, ..., x{d-1} and y (0 inlier, 1 outlier), so every command
// that takes a table takes .mat files: `normad train --data cardio.mat --label y --normal 0`.
Csv read_csv(const std::string& path);
// One field for a CSV file normad writes (RFC 4180): quoted when it holds a comma, a quote, a line
// break or leading / trailing spaces or tabs (which the reader would trim), quotes doubled; as is
// otherwise. read_csv gives the field back unchanged: an image named `a,"b".png` stays one name.
std::string csv_field(const std::string& s);

// The same on text in memory; `name` stands in for the file name in error messages.
Csv parse_csv(const std::string& text,          // the whole file's contents
              const std::string& name);         // e.g. "data.csv"

// A numeric table ready for a model.
struct Table {
  std::vector<std::string> columns;             // F feature names; one-hot outputs are "<name>=<value>"
  Tensor x;                                     // [N, F] float32
  std::vector<std::string> labels;              // N label strings, or empty when there is no label column
  int64_t unknown_categories = 0;               // one-hot cells with a value unseen in fit (all zeros)
  int64_t extreme_cells = 0;                    // standardised cells beyond kExtremeStd (see apply)
  std::string first_extreme;                    // "file:line: column 'c' = 'v', z standard deviations ..."
};

// A standardised value beyond this many training standard deviations is counted as extreme (the
// models' scores of such rows say little); beyond float32's range it is an error.
constexpr double kExtremeStd = 1e6;

struct PreprocessOptions {
  // Default initialisers on every member keep GCC quiet about designated initialisers that skip one.
  std::string label = "";                       // label column name; "" when the table has none
  std::vector<std::string> one_hot = {};        // categorical columns to one-hot encode
  std::vector<std::string> ignore = {};         // columns kept out of the features (ids, free text)
  bool standardise = false;                     // fit mean and std per output feature
};

// How raw columns become features; fitted on training rows, re-applied to any later file.
// Unknown categories at apply time (a value not seen in fit) encode as all zeros and are counted in
// Table::unknown_categories rather than raised: scoring data may legitimately hold new values.
// Standardisation covers every output feature, one-hot columns included, after encoding.
struct Preprocess {
  std::string label;                                           // label column, "" for none
  std::vector<std::string> inputs;                             // raw feature columns, in file order
  std::map<std::string, std::vector<std::string>> categories;  // one-hot column -> sorted categories
  std::vector<std::string> ignored;                            // columns skipped wherever they appear
  std::vector<float> mean, stddev;                             // per output feature; empty: none

  // Fits on `train`: finds the label and one-hot columns (errors list the available columns),
  // collects the sorted categories, and with standardise the population mean and std of each output
  // feature (std 1 for a constant feature, so it maps to 0). Needs at least one row.
  static Preprocess fit(const Csv& train,                  // parsed training file
                        const PreprocessOptions& options); // label, one-hot columns, standardise

  // Encodes `csv`, whose columns must be the fitted inputs (any order) plus, optionally, the label
  // column and ignored columns; without the label the labels come back empty (a table to score). Errors name the file, line and
  // column of a cell that is not a finite number, and any missing or unexpected column.
  Table apply(const Csv& csv) const;

  std::vector<std::string> columns() const;  // output feature names, as in Table::columns

  // Keys "csv.label", "csv.inputs", "csv.one_hot", "csv.categories.<column>", "csv.ignore" when
  // columns are ignored, and with standardisation "csv.mean", "csv.std" (values printed "%.9g", which round-trips float32 exactly).
  // Lists are stored as one CSV record. from_metadata ignores other keys; it throws on missing or
  // malformed csv.* keys.
  std::map<std::string, std::string> to_metadata() const;
  // `file` names the model file in errors.
  static Preprocess from_metadata(const std::map<std::string, std::string>& metadata,
                                  const std::string& file = "model metadata");
};

// The rows of `csv` whose column `column` holds one of `values` (in file order, lines kept).
// An Error names the file when the column does not exist.
Csv select_rows(const Csv& csv,                          // parsed file
                const std::string& column,               // e.g. the label column
                const std::vector<std::string>& values); // values to keep

// An option's comma list: "a,b,c" -> {"a", "b", "c"} (fields as given, a final comma adds none);
// an empty list throws naming `what` (the option or metadata field).
std::vector<std::string> split_list(const std::string& s, const char* what);
// The other way for numbers: {128, 512} -> "128,512".
template <typename T>
std::string join_list(const std::vector<T>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// Position of column `name` in csv's header, or -1 when there is none.
int64_t column_index(const Csv& csv, const std::string& name);

// The rows `rows` of `csv` (0-based, in the given order), lines kept for error messages.
Csv take_rows(const Csv& csv, const std::vector<int64_t>& rows);

// Reads `path` with every non-label column numeric, no one-hot and no standardisation.
Table read_table(const std::string& path,      // CSV file
                 const std::string& label);    // label column name, "" for none

// Labels as classes: the sorted distinct values; class id k is position k (0..K-1).
std::vector<std::string> label_classes(const std::vector<std::string>& labels);
// Class id of each label; a label that is not among `classes` is an Error naming it.
std::vector<int64_t> label_ids(const std::vector<std::string>& labels,    // N label strings
                               const std::vector<std::string>& classes);  // from label_classes
// One-class view: 0 where the label equals `normal`, 1 (anomaly) elsewhere, the convention of
// eval/metrics.h. An Error (listing the classes) when no row has the label `normal`.
std::vector<int> anomaly_labels(const std::vector<std::string>& labels,  // N label strings
                                const std::string& normal);              // the normal class

}  // namespace normad::data
