// normad CSV reader (see data/csv.h): a character-level RFC 4180 record parser, then typing of the
// cells by a fitted Preprocess (numbers, one-hot categories, labels). Math: x' = (x - mean) / std with
// the population std (divide by N) accumulated in double. Tested by tests/test_csv.cpp.
#include "data/csv.h"
#include "tensor/metadata.h"
#include "data/mat.h"

#include <algorithm>
#include <string_view>
#include <unordered_set>
#include <unordered_map>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace normad::data {

namespace {

// One CSV record (a line, or several when a quoted field holds newlines).
struct Record {
  std::vector<std::string> fields;
  int64_t line = 0;     // 1-based line where the record starts
  bool quoted = false;  // some field was quoted (so the record is not blank)
};

bool is_space(char c) { return c == ' ' || c == '\t'; }

// A blank line parses as one unquoted field of spaces at most.
bool is_blank(const Record& r) {
  return !r.quoted && r.fields.size() == 1 &&
         std::all_of(r.fields[0].begin(), r.fields[0].end(), is_space);
}

// Splits `text` into records. A quoted field may hold commas, newlines and "" (one quote); spaces may
// follow its closing quote. A quote inside an unquoted field is kept literally (as Python's csv does).
std::vector<Record> parse_records(const std::string& text, const std::string& name) {
  std::vector<Record> out;
  const size_t n = text.size();
  size_t i = 0;
  int64_t line = 1;
  // Skip a UTF-8 byte order mark (spreadsheets write one); it would otherwise join the first name.
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
  while (i < n) {
    Record r;
    r.line = line;
    // One field per iteration; a ',' after it continues the record.
    for (;;) {
      std::string field;
      // Spaces before an opening quote are not part of the field ("a, \"b c\"" names a and b c).
      size_t q = i;
      while (q < n && is_space(text[q])) ++q;
      if (q < n && text[q] == '"') i = q;
      if (i < n && text[i] == '"') {
        // Quoted: everything up to the closing quote, separators and line ends included.
        r.quoted = true;
        ++i;
        for (;;) {
          if (i >= n) throw Error(name + ":" + std::to_string(r.line) + ": unterminated quoted field");
          const char c = text[i++];
          if (c == '"') {
            if (i < n && text[i] == '"') {  // "" inside quotes is one quote
              field += '"';
              ++i;
            } else {
              break;
            }
          } else {
            if (c == '\n') ++line;  // a newline inside quotes still advances the line count
            field += c;
          }
        }
        // After the closing quote only spaces, then a separator or the line end.
        while (i < n && is_space(text[i])) ++i;
        if (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
          throw Error(name + ":" + std::to_string(line) + ": field " + std::to_string(r.fields.size() + 1) +
                      ": unexpected character after the closing quote");
      } else {
        // Unquoted: up to the next separator or line end, without surrounding spaces and tabs
        // ("a, b, c" names columns a, b and c; a quoted field keeps its spaces).
        size_t start = i;
        while (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r') ++i;
        size_t stop = i;
        while (start < stop && is_space(text[start])) ++start;
        while (stop > start && is_space(text[stop - 1])) --stop;
        field.assign(text, start, stop - start);
      }
      r.fields.push_back(std::move(field));
      if (i < n && text[i] == ',') {
        ++i;
        continue;
      }
      // End of record: LF, CRLF, a lone CR, or the end of the text.
      if (i < n && text[i] == '\r') ++i;
      if (i < n && text[i] == '\n') ++i;
      ++line;
      break;
    }
    out.push_back(std::move(r));
  }
  return out;
}

// "'a', 'b', 'c'": column lists in error messages (quoted so stray spaces show).
std::string name_list(const std::vector<std::string>& names) {
  std::string s;
  for (size_t k = 0; k < names.size(); ++k) s += (k ? ", '" : "'") + names[k] + "'";
  return s;
}

int64_t find_column(const std::vector<std::string>& header, const std::string& name) {
  auto it = std::find(header.begin(), header.end(), name);
  return it == header.end() ? -1 : int64_t(it - header.begin());
}

// Parses a number that float32 can hold, after trimming spaces; a leading '+' is allowed.
// Locale-independent. Read in double: magnitudes above float32's largest (3.4e38) are out of range,
// tiny ones are valid and become float32 denormals or zero (1e-46 is a number, not an error).
bool parse_number(const std::string& cell, double* v, std::string* why) {
  // std::from_chars takes neither spaces nor '+', and ignores the C locale's decimal separator.
  size_t b = 0, e = cell.size();
  while (b < e && is_space(cell[b])) ++b;
  while (e > b && is_space(cell[e - 1])) --e;
  if (b < e && cell[b] == '+' && (e - b == 1 || cell[b + 1] != '-')) ++b;  // "+-1" stays invalid
  auto [ptr, ec] = std::from_chars(cell.data() + b, cell.data() + e, *v);
  if (ec == std::errc::result_out_of_range && ptr == cell.data() + e) {
    // Underflow (|v| below double's denormals) is zero; overflow is out of range.
    const std::string t(cell.data() + b, cell.data() + e);
    const double probe = std::strtod(t.c_str(), nullptr);
    if (std::fabs(probe) < 1) {
      *v = std::copysign(0.0, probe);
      return true;
    }
    *why = "is out of range for float32 (largest magnitude 3.4e38)";
    return false;
  }
  if (ec != std::errc() || ptr != cell.data() + e || b == e) {
    *why = "is not a number";
    return false;
  }
  if (!std::isfinite(*v)) {
    *why = "is not a finite number";
    return false;
  }
  if (std::fabs(*v) > double(std::numeric_limits<float>::max())) {
    *why = "is out of range for float32 (largest magnitude 3.4e38)";
    return false;
  }
  return true;
}

bool parse_float(const std::string& cell, float* v, std::string* why) {
  double d = 0;
  if (!parse_number(cell, &d, why)) return false;
  *v = static_cast<float>(d);
  return true;
}

// A list of strings as one CSV record (for metadata): every field quoted, so "" is one empty string
// and an empty value is an empty list.
std::string join_record(const std::vector<std::string>& fields) {
  std::string s;
  for (size_t k = 0; k < fields.size(); ++k) {
    if (k) s += ',';
    s += '"';
    for (char c : fields[k]) s += (c == '"') ? std::string("\"\"") : std::string(1, c);
    s += '"';
  }
  return s;
}

// The inverse of join_record; `key` names the metadata entry in errors.
std::vector<std::string> split_record(const std::string& s, const std::string& key) {
  if (s.empty()) return {};
  std::vector<Record> r = parse_records(s, "model metadata " + key);
  if (r.size() != 1) throw Error(key + " is not a single CSV record");
  return r[0].fields;
}

std::string join_floats(const std::vector<float>& v) {
  std::string s;
  char buf[32];
  for (size_t k = 0; k < v.size(); ++k) {
    std::snprintf(buf, sizeof buf, "%.9g", double(v[k]));  // 9 significant digits round-trip float32
    s += (k ? "," : "") + std::string(buf);
  }
  return s;
}

std::vector<float> split_floats(const std::string& s, const std::string& key) {
  std::vector<float> out;
  for (const std::string& f : split_record(s, key)) {
    float v;
    std::string why;
    if (!parse_float(f, &v, &why)) throw Error(key + ": '" + f + "' " + why);
    out.push_back(v);
  }
  return out;
}

// The label column must exist where a label is asked for (fit, read_table); apply allows its absence.
void check_label(const Csv& csv, const std::string& label) {
  if (!label.empty() && find_column(csv.header, label) < 0)
    throw Error(csv.path + ": label column '" + label + "' not found (columns: " + name_list(csv.header) +
                ")");
}


}  // namespace

std::string csv_field(const std::string& s) {
  const bool edge_space = !s.empty() && (s.front() == ' ' || s.front() == '\t' || s.back() == ' ' || s.back() == '\t');
  if (!edge_space && s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return q + '"';
}

Csv parse_csv(const std::string& text, const std::string& name) {
  std::vector<Record> recs = parse_records(text, name);
  // Trailing empty lines are ignored; an empty line inside the table is an error below.
  while (!recs.empty() && is_blank(recs.back())) recs.pop_back();
  if (recs.empty()) throw Error(name + ": empty file (no header row)");
  if (is_blank(recs[0])) throw Error(name + ":" + std::to_string(recs[0].line) + ": empty header row");
  Csv csv;
  csv.path = name;
  csv.header = std::move(recs[0].fields);
  // Names must be unique: the label, one-hot and fitted columns are all found by name. One hash
  // map of first positions (comparing every pair was quadratic: a 50 MB header took over a minute).
  std::unordered_map<std::string_view, size_t> first_at;
  first_at.reserve(csv.header.size());
  for (size_t j = 0; j < csv.header.size(); ++j) {
    auto [it, fresh] = first_at.emplace(csv.header[j], j);
    if (!fresh)
      throw Error(name + ":" + std::to_string(recs[0].line) + ": duplicate column name '" + csv.header[j] +
                  "' (columns " + std::to_string(it->second + 1) + " and " + std::to_string(j + 1) + ")");
  }
  // Every data row has exactly the header's width.
  const size_t width = csv.header.size();
  for (size_t r = 1; r < recs.size(); ++r) {
    const std::string at = name + ":" + std::to_string(recs[r].line) + ": ";
    // With a single column an empty line would be one empty cell; call it what it is either way.
    if (is_blank(recs[r]) && width > 1) throw Error(at + "empty line inside the table");
    if (recs[r].fields.size() != width)
      throw Error(at + "expected " + std::to_string(width) + " fields (as in the header), got " +
                  std::to_string(recs[r].fields.size()));
    csv.rows.push_back(std::move(recs[r].fields));
    csv.lines.push_back(recs[r].line);
  }
  return csv;
}

namespace {

// A level-5 MAT-file by content, whatever its name: a 116-byte text header starting "MATLAB 5.0"
// and the endian indicator "IM" or "MI" at byte 126.
bool is_mat_file(const std::string& bytes) {
  return bytes.size() >= 128 && bytes.compare(0, 10, "MATLAB 5.0") == 0 &&
         (bytes.compare(126, 2, "IM") == 0 || bytes.compare(126, 2, "MI") == 0);
}

// An ODDS table (X [n, d], y [n]) as the CSV x0, ..., x{d-1}, y; values printed "%.9g", which
// reads back to the same float32. Lines are the rows' 1-based positions plus the header's line.
Csv odds_as_csv(const std::string& path) {
  const OddsTable t = read_odds(path);
  const int64_t n = t.X.size(0), d = t.X.size(1);
  Csv csv;
  csv.path = path;
  for (int64_t j = 0; j < d; ++j) csv.header.push_back("x" + std::to_string(j));
  csv.header.push_back("y");
  char cell[32];
  csv.rows.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    auto& row = csv.rows[static_cast<size_t>(i)];
    for (int64_t j = 0; j < d; ++j) {
      std::snprintf(cell, sizeof cell, "%.9g", t.X.data()[i * d + j]);
      row.emplace_back(cell);
    }
    row.push_back(std::to_string(t.y[static_cast<size_t>(i)]));
    csv.lines.push_back(i + 2);
  }
  return csv;
}

}  // namespace

Csv read_csv(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw Error(path + ": no such CSV file");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  // The whole file at once: tabular anomaly-detection sets are small (ODDS: up to ~600k short rows).
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  if (is_mat_file(text)) return odds_as_csv(path);
  if (text.compare(0, 10, "MATLAB 7.3") == 0)  // HDF5-based (ODDS http.mat, smtp.mat)
    throw Error(path + ": a MATLAB 7.3 (HDF5) MAT-file: normad reads level-5 MAT-files; save it with "
                       "scipy.io.savemat or MATLAB's save -v7");
  return parse_csv(text, path);
}

Preprocess Preprocess::fit(const Csv& train, const PreprocessOptions& options) {
  Preprocess p;
  p.label = options.label;
  check_label(train, p.label);
  for (const std::string& c : options.one_hot) {
    if (find_column(train.header, c) < 0)
      throw Error(train.path + ": one-hot column '" + c + "' not found (columns: " + name_list(train.header) +
                  ")");
    if (c == p.label)
      throw Error(train.path + ": column '" + c + "' is the label column, it cannot be one-hot");
  }
  for (const std::string& c : options.ignore) {
    if (find_column(train.header, c) < 0)
      throw Error(train.path + ": ignored column '" + c + "' (--ignore or --id) not found (columns: " +
                name_list(train.header) + ")");
    if (c == p.label)
      throw Error(train.path + ": column '" + c + "' is the label column, it cannot be ignored (--ignore or --id)");
    if (std::find(options.one_hot.begin(), options.one_hot.end(), c) != options.one_hot.end())
      throw Error(train.path + ": column '" + c + "' is both one-hot and ignored (--ignore or --id)");
  }
  p.ignored = options.ignore;
  if (train.rows.empty()) throw Error(train.path + ": no data rows to fit on");
  // Inputs: the header minus the label and the ignored columns, in file order; a one-hot column
  // keeps its place.
  for (size_t j = 0; j < train.header.size(); ++j) {
    const std::string& name = train.header[j];
    if (name == p.label || std::find(p.ignored.begin(), p.ignored.end(), name) != p.ignored.end()) continue;
    p.inputs.push_back(name);
    if (std::find(options.one_hot.begin(), options.one_hot.end(), name) == options.one_hot.end()) continue;
    // Categories: the distinct training values, sorted bytewise (std::string order).
    std::set<std::string> seen;
    for (const auto& row : train.rows) seen.insert(row[j]);
    p.categories[name] = std::vector<std::string>(seen.begin(), seen.end());
  }
  if (p.inputs.empty())
    throw Error(train.path + ": no feature columns (columns: " + name_list(train.header) +
                "; the label and ignored columns are not features)");
  if (!options.standardise) return p;
  // Standardisation statistics from the encoded training rows, two passes in double.
  Table t = p.apply(train);
  const int64_t N = t.x.size(0), F = t.x.size(1);
  const float* x = t.x.data();
  p.mean.assign(F, 0.f);
  p.stddev.assign(F, 1.f);
  for (int64_t f = 0; f < F; ++f) {
    double sum = 0;
    for (int64_t i = 0; i < N; ++i) sum += x[i * F + f];
    const double mean = sum / double(N);
    double sq = 0;
    for (int64_t i = 0; i < N; ++i) sq += (x[i * F + f] - mean) * (x[i * F + f] - mean);
    const double sd = std::sqrt(sq / double(N));  // population std (no Bessel correction)
    p.mean[f] = float(mean);
    // A constant feature gets std 1 so that it maps to 0 instead of dividing by zero.
    p.stddev[f] = (sd > 0 && float(sd) > 0) ? float(sd) : 1.f;
  }
  return p;
}

std::vector<std::string> Preprocess::columns() const {
  std::vector<std::string> out;
  for (const std::string& name : inputs) {
    auto it = categories.find(name);
    if (it == categories.end()) {
      out.push_back(name);
      continue;
    }
    for (const std::string& v : it->second) out.push_back(name + "=" + v);
  }
  return out;
}

Table Preprocess::apply(const Csv& csv) const {
  // Map the fitted inputs to this file's columns by name (names are unique, parse_csv checks), in
  // one sequential pass when the file keeps the fitted order, else through hash maps: a search per
  // name was quadratic in the width (80 000 columns took 52 s). The label column is optional.
  const int64_t label_col = label.empty() ? -1 : find_column(csv.header, label);
  // Columns that are no input: the label and the ignored columns, wherever they are.
  std::vector<char> skip(csv.header.size(), 0);
  if (label_col >= 0) skip[size_t(label_col)] = 1;
  for (const std::string& name : ignored)
    if (const int64_t j = find_column(csv.header, name); j >= 0) skip[size_t(j)] = 1;
  const size_t skipped = size_t(std::count(skip.begin(), skip.end(), 1));
  std::vector<int64_t> src;
  // The usual file has the fitted inputs in their order around the others: one sequential pass.
  for (size_t j = 0; j < csv.header.size() && src.size() < inputs.size(); ++j)
    if (!skip[j] && csv.header[j] == inputs[src.size()]) src.push_back(int64_t(j));
  if (src.size() != inputs.size() || csv.header.size() != inputs.size() + skipped) {
    src.clear();
    std::unordered_map<std::string_view, int64_t> column_of;
    column_of.reserve(csv.header.size());
    for (size_t j = 0; j < csv.header.size(); ++j) column_of.emplace(csv.header[j], int64_t(j));
    for (const std::string& name : inputs) {
      auto it = column_of.find(name);
      if (it == column_of.end())
        throw Error(csv.path + ": column '" + name + "' (a fitted feature) not found (columns: " +
                    name_list(csv.header) + ")");
      src.push_back(it->second);
    }
    // Every other column must be a fitted input: silently dropping one would hide a mismatched
    // file.
    const std::unordered_set<std::string_view> fitted(inputs.begin(), inputs.end());
    for (size_t j = 0; j < csv.header.size(); ++j)
      if (!skip[j] && !fitted.count(csv.header[j]))
        throw Error(csv.path + ": column '" + csv.header[j] + "' (" + std::to_string(j + 1) +
                    ") is not a fitted feature (fitted: " + name_list(inputs) + ")");
  }
  Table t;
  t.columns = columns();
  const int64_t N = int64_t(csv.rows.size()), F = int64_t(t.columns.size());
  if (!mean.empty() && (int64_t(mean.size()) != F || int64_t(stddev.size()) != F))
    throw Error("csv preprocess: " + std::to_string(mean.size()) + " means for " + std::to_string(F) +
                " features");
  t.x = Tensor::zeros({N, F});
  float* x = t.x.data();
  for (int64_t i = 0; i < N; ++i) {
    const auto& row = csv.rows[i];
    int64_t f = 0;  // output feature being written
    for (size_t k = 0; k < inputs.size(); ++k) {
      const std::string& cell = row[src[k]];
      auto cat = categories.find(inputs[k]);
      if (cat != categories.end()) {
        // One-hot: a 1 at the category's sorted position; an unseen category leaves all zeros.
        const auto& c = cat->second;
        auto it = std::lower_bound(c.begin(), c.end(), cell);  // categories are sorted (fit, from_metadata)
        if (it != c.end() && *it == cell)
          x[i * F + f + (it - c.begin())] = 1.f;
        else
          ++t.unknown_categories;
        f += int64_t(c.size());
        continue;
      }
      std::string why;
      double v = 0;
      if (!parse_number(cell, &v, &why))
        throw Error(csv.path + ":" + std::to_string(csv.lines[i]) + ": column '" + inputs[k] + "' (" +
                    std::to_string(src[k] + 1) + "): '" + cell + "' " + why +
                    (why == "is not a number" && !cell.empty() ? " (a label, category or identifier column? name it with --label, --one-hot, or --ignore / --id)" : ""));
      // Standardised in double: (x - mean) of two extreme float32 values would overflow in float.
      // A value so far from the training rows that its standardised form leaves float32 is an
      // error: as infinity it would reach the model as NaN or a meaningless score.
      if (!mean.empty()) {
        const double z = (v - double(mean[f])) / double(stddev[f]);
        if (!(std::fabs(z) <= double(std::numeric_limits<float>::max())))
          throw Error(csv.path + ":" + std::to_string(csv.lines[i]) + ": column '" + inputs[k] + "' (" +
                      std::to_string(src[k] + 1) + "): '" + cell + "' is " + std::to_string(std::fabs(z)) +
                      " standard deviations from the training mean, beyond float32's range");
        if (std::fabs(z) > kExtremeStd && t.extreme_cells++ == 0)
          t.first_extreme = csv.path + ":" + std::to_string(csv.lines[i]) + ": column '" + inputs[k] + "' = '" + cell +
                            "', " + std::to_string(std::fabs(z)) + " standard deviations from the training mean";
        v = z;
      }
      x[i * F + f] = float(v);
      ++f;
    }
  }
  // Standardise one-hot columns with the fitted statistics too (numeric ones were done above).
  if (!mean.empty())
    for (int64_t f0 = 0, k = 0; k < int64_t(inputs.size()); ++k) {
      auto cat = categories.find(inputs[k]);
      const int64_t width = cat == categories.end() ? 1 : int64_t(cat->second.size());
      if (cat != categories.end())
        for (int64_t i = 0; i < N; ++i)
          for (int64_t f = f0; f < f0 + width; ++f) x[i * F + f] = float((double(x[i * F + f]) - mean[f]) / stddev[f]);
      f0 += width;
    }
  if (label_col >= 0)
    for (const auto& row : csv.rows) t.labels.push_back(row[label_col]);
  return t;
}

std::map<std::string, std::string> Preprocess::to_metadata() const {
  std::map<std::string, std::string> m;
  m["csv.label"] = label;
  m["csv.inputs"] = join_record(inputs);
  std::vector<std::string> one_hot;  // in input order, so the record reads like the file
  for (const std::string& name : inputs)
    if (categories.count(name)) one_hot.push_back(name);
  m["csv.one_hot"] = join_record(one_hot);
  if (!ignored.empty()) m["csv.ignore"] = join_record(ignored);
  for (const auto& [name, cats] : categories) m["csv.categories." + name] = join_record(cats);
  if (!mean.empty()) {
    m["csv.mean"] = join_floats(mean);
    m["csv.std"] = join_floats(stddev);
  }
  return m;
}

Preprocess Preprocess::from_metadata(const std::map<std::string, std::string>& metadata, const std::string& file) {
  const MetadataReader meta(metadata, file);
  auto field = [&](const std::string& key) { return file + ": metadata field '" + key + "'"; };  // in errors
  Preprocess p;
  p.label = meta.text("csv.label");
  p.inputs = split_record(meta.text("csv.inputs"), field("csv.inputs"));
  for (const std::string& name : split_record(meta.text("csv.one_hot"), field("csv.one_hot"))) {
    if (std::find(p.inputs.begin(), p.inputs.end(), name) == p.inputs.end())
      throw Error(file + ": one-hot column '" + name + "' is not among csv.inputs");
    const std::string key = "csv.categories." + name;
    auto& cats = p.categories[name];
    cats = split_record(meta.text(key), field(key));
    // apply() finds a category by binary search: the list must be sorted and distinct, as fit wrote it.
    const bool sorted = std::is_sorted(cats.begin(), cats.end());
    if (!sorted || std::adjacent_find(cats.begin(), cats.end()) != cats.end())
      throw Error(file + ": " + key + " is not a sorted list of distinct categories");
  }
  if (meta.has("csv.ignore")) p.ignored = split_record(meta.text("csv.ignore"), field("csv.ignore"));
  for (const std::string& name : p.ignored)
    if (name == p.label || std::find(p.inputs.begin(), p.inputs.end(), name) != p.inputs.end())
      throw Error(file + ": ignored column '" + name + "' is also the label or a fitted input");
  // Standardisation is on exactly when the statistics are present.
  if (meta.has("csv.mean")) {
    p.mean = split_floats(meta.text("csv.mean"), field("csv.mean"));
    p.stddev = split_floats(meta.text("csv.std"), field("csv.std"));
    const size_t F = p.columns().size();
    if (p.mean.size() != F || p.stddev.size() != F)
      throw Error(file + ": csv.mean/csv.std hold " + std::to_string(p.mean.size()) + "/" +
                  std::to_string(p.stddev.size()) + " values for " + std::to_string(F) + " features");
    // split_floats already refuses non-finite values; a standard deviation must also be positive.
    for (size_t f = 0; f < F; ++f)
      if (!(p.stddev[f] > 0))
        throw Error(file + ": csv.std value " + std::to_string(f + 1) + " (feature '" + p.columns()[f] +
                    "') is " + std::to_string(p.stddev[f]) + ", not a positive standard deviation");
  }
  return p;
}

Table read_table(const std::string& path, const std::string& label) {
  Csv csv = read_csv(path);
  Preprocess p;  // the identity preprocessing: every non-label column a numeric feature
  p.label = label;
  check_label(csv, label);
  for (const std::string& name : csv.header)
    if (name != label) p.inputs.push_back(name);
  return p.apply(csv);
}

std::vector<std::string> split_list(const std::string& s, const char* what) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  if (out.empty()) throw Error(std::string(what) + ": empty list");
  return out;
}

int64_t column_index(const Csv& csv, const std::string& name) { return find_column(csv.header, name); }

Csv take_rows(const Csv& csv, const std::vector<int64_t>& rows) {
  Csv out{csv.path, csv.header, {}, {}};
  for (int64_t i : rows) {
    check(i >= 0 && i < int64_t(csv.rows.size()), "take_rows", "row " + std::to_string(i) + " out of range");
    out.rows.push_back(csv.rows[i]);
    out.lines.push_back(csv.lines[i]);
  }
  return out;
}

Csv select_rows(const Csv& csv, const std::string& column, const std::vector<std::string>& values) {
  auto col = std::find(csv.header.begin(), csv.header.end(), column);
  if (col == csv.header.end())
    throw Error(csv.path + ": column '" + column + "' not found (columns: " + name_list(csv.header) + ")");
  const size_t j = static_cast<size_t>(col - csv.header.begin());
  Csv out{csv.path, csv.header, {}, {}};
  for (size_t i = 0; i < csv.rows.size(); ++i)
    if (std::find(values.begin(), values.end(), csv.rows[i][j]) != values.end()) {
      out.rows.push_back(csv.rows[i]);
      out.lines.push_back(csv.lines[i]);
    }
  return out;
}

std::vector<std::string> label_classes(const std::vector<std::string>& labels) {
  std::set<std::string> s(labels.begin(), labels.end());
  return std::vector<std::string>(s.begin(), s.end());
}

std::vector<int64_t> label_ids(const std::vector<std::string>& labels,
                               const std::vector<std::string>& classes) {
  std::map<std::string, int64_t> id;
  for (size_t k = 0; k < classes.size(); ++k) id.emplace(classes[k], int64_t(k));
  std::vector<int64_t> out;
  out.reserve(labels.size());
  for (const std::string& l : labels) {
    auto it = id.find(l);
    if (it == id.end())
      throw Error("label '" + l + "' is not one of the classes (" + name_list(classes) + ")");
    out.push_back(it->second);
  }
  return out;
}

std::vector<int> anomaly_labels(const std::vector<std::string>& labels, const std::string& normal) {
  std::vector<int> out;
  out.reserve(labels.size());
  bool any = false;
  for (const std::string& l : labels) {
    out.push_back(l == normal ? 0 : 1);
    any = any || l == normal;
  }
  if (!any)
    throw Error("normal class '" + normal + "' matches no label (classes: " +
                name_list(label_classes(labels)) + ")");
  return out;
}

}  // namespace normad::data
