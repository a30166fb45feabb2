// CSV reader tests on small files written here: quoting, CRLF, trailing blank lines, label by name,
// one-hot fitted on train and applied to test, standardisation against hand-computed values, an exact
// metadata round trip, label helpers, and every error message (file, line, column named).
#include <cmath>
#include <fstream>

#include "data/csv.h"
#include "tests/helpers.h"

using namespace normad;
using Catch::Contains;

namespace {
// Writes `text` byte for byte (binary, so CRLF stays CRLF) and returns the path.
std::string write_csv(const std::string& name, const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / "normad_test_csv";
  std::filesystem::create_directories(dir);
  std::string p = (dir / name).string();
  std::ofstream(p, std::ios::binary) << text;
  return p;
}
std::vector<float> row_of(const Tensor& x, int64_t i) {
  const int64_t F = x.size(1);
  return std::vector<float>(x.data() + i * F, x.data() + (i + 1) * F);
}
}  // namespace

TEST_CASE("csv: quoted fields, CRLF, no final newline, label by name", "[data][csv]") {
  // The label sits in the middle; a quoted name holds a comma, a quoted label holds "" and a newline.
  const std::string p = write_csv("quoted.csv",
                                  "a,label,\"b, c\"\r\n"
                                  "1,x,\"2.5\"\r\n"
                                  "\" -3 \",\"say \"\"hi\"\"\",+4e1\r\n"
                                  "0.5,\"two\r\nlines\",7");
  data::Csv csv = data::read_csv(p);
  CHECK(csv.header == std::vector<std::string>{"a", "label", "b, c"});
  CHECK(csv.lines == std::vector<int64_t>{2, 3, 4});
  data::Table t = data::read_table(p, "label");
  CHECK(t.columns == std::vector<std::string>{"a", "b, c"});
  REQUIRE(t.x.shape() == Shape{3, 2});
  CHECK(t.x.to_vector() == std::vector<float>{1.f, 2.5f, -3.f, 40.f, 0.5f, 7.f});
  CHECK(t.labels == std::vector<std::string>{"x", "say \"hi\"", "two\r\nlines"});
  CHECK(t.unknown_categories == 0);
}

TEST_CASE("csv: LF, byte order mark, spaces around numbers, trailing empty lines ignored", "[data][csv]") {
  const std::string p = write_csv("lf.csv", "\xEF\xBB\xBFx,y\n 1 ,\t2\n3,4\n\n  \n\r\n");
  data::Table t = data::read_table(p, "");
  CHECK(t.columns == std::vector<std::string>{"x", "y"});
  CHECK(t.x.to_vector() == std::vector<float>{1.f, 2.f, 3.f, 4.f});
  CHECK(t.labels.empty());
  // A header-only file is a table with no rows.
  data::Table empty = data::read_table(write_csv("header_only.csv", "x,y\n"), "");
  CHECK(empty.x.shape() == Shape{0, 2});
}

TEST_CASE("csv: one-hot fitted on train, unseen category at apply is all zeros and counted", "[data][csv]") {
  const std::string train_p = write_csv("oh_train.csv",
                                        "age,color,score,class\n"
                                        "30,red,1.5,a\n"
                                        "40,blue,2,b\n"
                                        "50,red,3,a\n");
  const std::string test_p = write_csv("oh_test.csv",
                                       "age,color,score,class\n"
                                       "60,blue,4,b\n"
                                       "70,green,5,a\n");
  data::Csv train_csv = data::read_csv(train_p);
  data::Preprocess pre = data::Preprocess::fit(train_csv, {.label = "class", .one_hot = {"color"}});
  CHECK(pre.inputs == std::vector<std::string>{"age", "color", "score"});
  CHECK(pre.categories.at("color") == std::vector<std::string>{"blue", "red"});  // sorted
  data::Table train = pre.apply(train_csv);
  // Categories sorted, placed where `color` was.
  CHECK(train.columns == std::vector<std::string>{"age", "color=blue", "color=red", "score"});
  CHECK(row_of(train.x, 0) == std::vector<float>{30, 0, 1, 1.5f});
  CHECK(row_of(train.x, 1) == std::vector<float>{40, 1, 0, 2});
  CHECK(train.labels == std::vector<std::string>{"a", "b", "a"});
  data::Table test = pre.apply(data::read_csv(test_p));
  CHECK(row_of(test.x, 0) == std::vector<float>{60, 1, 0, 4});
  CHECK(row_of(test.x, 1) == std::vector<float>{70, 0, 0, 5});  // "green" unseen: all zeros
  CHECK(test.unknown_categories == 1);
  // The test file may order its columns differently: matched by name.
  const std::string swapped_p = write_csv("oh_swapped.csv", "score,class,color,age\n4,b,blue,60\n");
  data::Table swapped = pre.apply(data::read_csv(swapped_p));
  CHECK(row_of(swapped.x, 0) == std::vector<float>{60, 1, 0, 4});
}

TEST_CASE("csv: standardisation fit and apply against hand-computed values", "[data][csv]") {
  // u = 1, 2, 3, 6: mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5; k is constant (std -> 1).
  const std::string p = write_csv("std.csv", "u,k,cat\n1,5,p\n2,5,q\n3,5,p\n6,5,p\n");
  data::Csv csv = data::read_csv(p);
  data::Preprocess pre = data::Preprocess::fit(csv, {.one_hot = {"cat"}, .standardise = true});
  REQUIRE(pre.mean.size() == 4);  // u, k, cat=p, cat=q
  CHECK(pre.mean[0] == Approx(3.0));
  CHECK(pre.stddev[0] == Approx(std::sqrt(3.5)));
  CHECK(pre.mean[1] == 5.f);
  CHECK(pre.stddev[1] == 1.f);
  // cat=p is 1, 0, 1, 1: mean 0.75, std sqrt(0.75 * 0.25).
  CHECK(pre.mean[2] == Approx(0.75));
  CHECK(pre.stddev[2] == Approx(std::sqrt(0.1875)));
  data::Table t = pre.apply(csv);
  CHECK(t.x.data()[0 * 4 + 0] == Approx((1 - 3) / std::sqrt(3.5)));
  CHECK(t.x.data()[3 * 4 + 0] == Approx((6 - 3) / std::sqrt(3.5)));
  for (int64_t i = 0; i < 4; ++i) CHECK(t.x.data()[i * 4 + 1] == 0.f);  // constant column -> 0
  // Other data uses the training statistics.
  data::Table other = pre.apply(data::read_csv(write_csv("std_other.csv", "u,k,cat\n10,7,q\n")));
  CHECK(other.x.data()[0] == Approx((10 - 3) / std::sqrt(3.5)));
  CHECK(other.x.data()[1] == Approx(2.0));
  CHECK(other.x.data()[3] == Approx((1 - 0.25) / std::sqrt(0.1875)));
}

TEST_CASE("csv: preprocess metadata round trip is exact", "[data][csv]") {
  // Awkward names and categories (commas, quotes, '=') and values with no short decimal form.
  const std::string p = write_csv("meta.csv",
                                  "\"f,1\",\"kind \"\"q\"\"\",y\n"
                                  "0.1,\"a,b\",n\n"
                                  "0.2,\"\",n\n"
                                  "0.7000001,x=1,o\n");
  data::Csv csv = data::read_csv(p);
  data::Preprocess pre =
      data::Preprocess::fit(csv, {.label = "y", .one_hot = {"kind \"q\""}, .standardise = true});
  std::map<std::string, std::string> meta = pre.to_metadata();
  meta["model.other"] = "ignored";  // the model file stores its own keys beside these
  data::Preprocess back = data::Preprocess::from_metadata(meta);
  CHECK(back.label == "y");
  CHECK(back.inputs == pre.inputs);
  CHECK(back.categories == pre.categories);
  CHECK(back.categories.at("kind \"q\"") == std::vector<std::string>{"", "a,b", "x=1"});
  CHECK(back.mean == pre.mean);  // bitwise equal, not approximately
  CHECK(back.stddev == pre.stddev);
  CHECK(pre.apply(csv).x.to_vector() == back.apply(csv).x.to_vector());
  // Without standardisation the statistics stay absent.
  data::Preprocess plain = data::Preprocess::fit(csv, {.label = "y"});
  CHECK(plain.to_metadata().count("csv.mean") == 0);
  data::Preprocess plain_back = data::Preprocess::from_metadata(plain.to_metadata());
  CHECK(plain_back.mean.empty());
  CHECK(plain_back.inputs == plain.inputs);
}

TEST_CASE("csv: a scoring table without the label column", "[data][csv]") {
  data::Csv train = data::read_csv(write_csv("score_train.csv", "a,b,label\n1,2,n\n3,4,n\n"));
  data::Preprocess pre = data::Preprocess::fit(train, {.label = "label"});
  data::Table t = pre.apply(data::read_csv(write_csv("score_new.csv", "b,a\n5,6\n")));
  CHECK(t.columns == std::vector<std::string>{"a", "b"});
  CHECK(t.x.to_vector() == std::vector<float>{6, 5});
  CHECK(t.labels.empty());
}

TEST_CASE("csv: select_rows keeps the rows whose column holds one of the values", "[data][csv]") {
  data::Csv c = data::parse_csv("x,k\n1,a\n2,b\n3,a\n4,c\n", "s.csv");
  data::Csv s = data::select_rows(c, "k", {"a", "c"});
  REQUIRE(s.rows.size() == 3);
  CHECK(s.rows[1][0] == "3");
  CHECK(s.lines == std::vector<int64_t>{2, 4, 5});
  CHECK_THROWS_WITH(data::select_rows(c, "nope", {"a"}), Catch::Contains("s.csv") && Catch::Contains("'nope'"));
}

TEST_CASE("csv: label classes, class ids and the one-class view", "[data][csv]") {
  const std::vector<std::string> labels{"dog", "cat", "bird", "cat"};
  const auto classes = data::label_classes(labels);
  CHECK(classes == std::vector<std::string>{"bird", "cat", "dog"});
  CHECK(data::label_ids(labels, classes) == std::vector<int64_t>{2, 1, 0, 1});
  CHECK(data::anomaly_labels(labels, "cat") == std::vector<int>{1, 0, 1, 0});
  CHECK_THROWS_WITH(data::label_ids({"cow"}, classes), Contains("'cow'") && Contains("'bird', 'cat'"));
  CHECK_THROWS_WITH(data::anomaly_labels(labels, "cow"), Contains("'cow'") && Contains("'bird', 'cat'"));
}

TEST_CASE("csv: cell errors name the file, line and column", "[data][csv]") {
  const std::string p = write_csv("bad_cell.csv", "id,name,age\n1,x,30\n\"2\",\"multi\nline\",31\n3,z,abc\n");
  // Line 5: the quoted newline in row 2 counts.
  CHECK_THROWS_WITH(data::read_table(p, "name"), Contains(p + ":5: column 'age' (3): 'abc' is not a number"));
  const std::string q = write_csv("bad_nan.csv", "a,b\n1,nan\n");
  CHECK_THROWS_WITH(data::read_table(q, ""),
                    Contains(q + ":2: column 'b' (2): 'nan' is not a finite number"));
  const std::string e = write_csv("bad_empty_cell.csv", "a,b\n1,\n");
  CHECK_THROWS_WITH(data::read_table(e, ""), Contains(e + ":2: column 'b' (2): '' is not a number"));
  const std::string big = write_csv("bad_range.csv", "a\n1e40\n");
  CHECK_THROWS_WITH(data::read_table(big, ""),
                    Contains(big + ":2: column 'a' (1)") && Contains("out of range"));
}

TEST_CASE("csv: file and structure errors name the file and line", "[data][csv]") {
  CHECK_THROWS_WITH(data::read_csv("/nonexistent/normad_nope.csv"), Contains("/nonexistent/normad_nope.csv"));
  const std::string empty = write_csv("empty.csv", "");
  CHECK_THROWS_WITH(data::read_csv(empty), Contains(empty) && Contains("no header"));
  const std::string blank = write_csv("blank.csv", "\n\r\n  \n");
  CHECK_THROWS_WITH(data::read_csv(blank), Contains(blank) && Contains("no header"));
  const std::string dup = write_csv("dup.csv", "a,b,a\n1,2,3\n");
  CHECK_THROWS_WITH(data::read_csv(dup), Contains(dup + ":1: duplicate column name 'a' (columns 1 and 3)"));
  const std::string width = write_csv("width.csv", "a,b,c\n1,2,3\n4,5\n");
  CHECK_THROWS_WITH(data::read_csv(width), Contains(width + ":3: expected 3 fields") && Contains("got 2"));
  const std::string gap = write_csv("gap.csv", "a,b\n1,2\n\n3,4\n");
  CHECK_THROWS_WITH(data::read_csv(gap), Contains(gap + ":3: empty line"));
  const std::string open = write_csv("open.csv", "a,b\n1,\"2\n");
  CHECK_THROWS_WITH(data::read_csv(open), Contains(open + ":2: unterminated quoted field"));
  const std::string junk = write_csv("junk.csv", "a,b\n1,\"2\"x\n");
  CHECK_THROWS_WITH(data::read_csv(junk), Contains(junk + ":2: field 2: unexpected character"));
}

TEST_CASE("csv: unknown label, one-hot and fitted columns list the available columns", "[data][csv]") {
  const std::string p = write_csv("cols.csv", "a,b,kind\n1,2,u\n");
  data::Csv csv = data::read_csv(p);
  CHECK_THROWS_WITH(data::read_table(p, "class"),
                    Contains(p) && Contains("label column 'class' not found (columns: 'a', 'b', 'kind')"));
  CHECK_THROWS_WITH(data::Preprocess::fit(csv, {.label = "class"}),
                    Contains(p + ": label column 'class' not found"));
  CHECK_THROWS_WITH(data::Preprocess::fit(csv, {.one_hot = {"colour"}}),
                    Contains(p) && Contains("one-hot column 'colour' not found (columns: 'a', 'b', 'kind')"));
  CHECK_THROWS_WITH(data::Preprocess::fit(csv, {.label = "kind", .one_hot = {"kind"}}),
                    Contains("is the label column"));
  // At apply time: a fitted feature missing from the new file, or a column that was never fitted.
  data::Preprocess pre = data::Preprocess::fit(csv, {.label = "kind"});
  const std::string miss = write_csv("cols_missing.csv", "a,kind\n1,u\n");
  CHECK_THROWS_WITH(pre.apply(data::read_csv(miss)),
                    Contains(miss) && Contains("column 'b' (a fitted feature) not found"));
  const std::string extra = write_csv("cols_extra.csv", "a,b,c\n1,2,3\n");
  CHECK_THROWS_WITH(pre.apply(data::read_csv(extra)),
                    Contains(extra) && Contains("column 'c' (3) is not a fitted feature"));
  // Metadata without the csv keys, or with statistics of the wrong length.
  CHECK_THROWS_WITH(data::Preprocess::from_metadata({}), Contains("model metadata: metadata field 'csv.label' is missing"));
  auto meta = data::Preprocess::fit(csv, {.label = "kind", .standardise = true}).to_metadata();
  meta.at("csv.mean") = std::string("1");
  CHECK_THROWS_WITH(data::Preprocess::from_metadata(meta),
                    Contains("csv.mean/csv.std hold 1/2 values for 2 features"));
  auto cats = data::Preprocess::fit(csv, {.one_hot = {"kind"}}).to_metadata();
  cats.at("csv.categories.kind") = std::string("\"v\",\"u\"");
  CHECK_THROWS_WITH(data::Preprocess::from_metadata(cats),
                    Contains("csv.categories.kind is not a sorted list"));
}

TEST_CASE("csv: fields normad writes read back intact (RFC 4180 quoting)", "[data][csv]") {
  // Image file names went into features and scores CSVs as they were: `a,b.png` became two fields
  // and every later column shifted.
  const std::vector<std::string> names = {"plain.png", "a,b.png",  "say \"hi\".png", "two\nlines.png",
                                          "cr\r\n.png", " lead.png", "trail.png\t",   "", "\"", ","};
  std::string text = "name,v\n";
  for (size_t i = 0; i < names.size(); ++i) text += data::csv_field(names[i]) + "," + std::to_string(i) + "\n";
  const data::Csv csv = data::parse_csv(text, "names.csv");
  REQUIRE(csv.rows.size() == names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    INFO(i);
    CHECK(csv.rows[i][0] == names[i]);
    CHECK(csv.rows[i][1] == std::to_string(i));
  }
  CHECK(data::csv_field("plain.png") == "plain.png");  // only what needs quotes is quoted
  CHECK(data::csv_field("a,b") == "\"a,b\"");
  CHECK(data::csv_field("say \"hi\"") == "\"say \"\"hi\"\"\"");
}

TEST_CASE("csv: ignored columns stay out of the features, wherever they are, and round-trip through metadata", "[data][csv]") {
  const data::Csv train = data::parse_csv("id,a,note,b,label\nr1,1,x y,2,n\nr2,3,\"p, q\",4,m\n", "t.csv");
  const data::Preprocess pre = data::Preprocess::fit(train, {.label = "label", .ignore = {"id", "note"}});
  CHECK(pre.inputs == std::vector<std::string>{"a", "b"});
  const data::Table t = pre.apply(train);
  CHECK(t.x.shape() == Shape{2, 2});
  CHECK(t.x.data()[2] == 3.f);
  // A scoring file: ignored columns may be missing or elsewhere; any other extra column is an error.
  const data::Csv moved = data::parse_csv("b,note,a\n2,z,1\n", "s.csv");
  const data::Preprocess back = data::Preprocess::from_metadata(pre.to_metadata());
  CHECK(back.ignored == pre.ignored);
  const data::Table u = back.apply(moved);
  CHECK(u.x.data()[0] == 1.f);
  CHECK(u.x.data()[1] == 2.f);
  CHECK_THROWS_WITH(back.apply(data::parse_csv("a,b,extra\n1,2,3\n", "e.csv")),
                    Catch::Contains("column 'extra'") && Catch::Contains("not a fitted feature"));
  // Errors: an ignored column that does not exist, or is the label or a one-hot column.
  CHECK_THROWS_WITH(data::Preprocess::fit(train, {.label = "label", .ignore = {"nope"}}),
                    Catch::Contains("ignored column 'nope' (--ignore or --id) not found"));
  CHECK_THROWS_WITH(data::Preprocess::fit(train, {.label = "label", .ignore = {"label"}}),
                    Catch::Contains("is the label column"));
  CHECK_THROWS_WITH(data::Preprocess::fit(train, {.label = "label", .one_hot = {"id"}, .ignore = {"id"}}),
                    Catch::Contains("both one-hot and ignored"));
  // Without --ignore, a text column is named in the error with the options that would fix it.
  CHECK_THROWS_WITH(data::Preprocess::fit(train, {.label = "label", .ignore = {"id"}, .standardise = true}),
                    Catch::Contains("column 'note'") && Catch::Contains("--ignore"));
}
