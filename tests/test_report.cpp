// Report tests (report/svg.h, report/report.h, apps/cmd_report.cpp): the SVG plots' elements and
// pixel positions, each kind of results page (eval, zeroshot, mvg eval) with the parts it must
// have, thumbnails and heat maps against hand-computed pixels, PNGs read back, and the CLI: --report
// equals `normad report` on the --json file byte for byte, bad documents are errors naming them.
// The page in a real browser: tests/report_chromium.sh.
#include <catch2/catch.hpp>

#include <json.hpp>

#include <fstream>
#include <regex>

#include "data/image.h"
#include "eval/metrics.h"
#include "report/report.h"
#include "report/svg.h"
#include "tests/cli_run.h"
#include "tests/image_files.h"
#include "tests/scratch.h"

using namespace normad;
using nlohmann::json;

namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// An eval document as normad eval writes it: scores, labels and (optionally) flagged rows.
json eval_doc(const std::vector<double>& s, const std::vector<int>& y, const std::vector<int>* flagged = nullptr) {
  json j{{"kind", "eval"}, {"scores", s}, {"labels", y}, {"auroc", eval::auroc(s, y)},
         {"ap", eval::average_precision(s, y)}, {"scores_file", "s.csv"}};
  if (flagged) j["flagged"] = *flagged;
  return j;
}

}  // namespace

TEST_CASE("report svg: a line plot puts data points where the frame maps them", "[report]") {
  // The plot box: x 58..384, y 30..272 (400 x 320 with margins 58, 16, 30, 48).
  const std::string svg = report::line_plot(
      "roc", report::Axes{"T", "x", "y", 0, 1, 0, 1},
      {report::Series{"a <b>", "#123456", {{0, 0}, {1, 1}, {0.5, 0.25}}}}, true);
  CHECK(svg.rfind("<svg class=\"plot roc\"", 0) == 0);
  CHECK(svg.find("points=\"58.0,272.0 384.0,30.0 221.0,211.5 \"") != std::string::npos);
  CHECK(count(svg, "<polyline class=\"curve\"") == 1);
  CHECK(count(svg, "class=\"chance\"") == 1);
  CHECK(svg.find("a &lt;b&gt;") != std::string::npos);  // labels are escaped
  CHECK(svg.find("<b>") == std::string::npos);
  // Ticks at 0, 0.2, ..., 1 on both axes: six grid lines each.
  CHECK(count(svg, "class=\"grid\"") == 12);
  // A non-finite point is left out rather than written as "nan".
  const std::string gap = report::line_plot("x", report::Axes{"T", "x", "y", 0, 1, 0, 1},
                                            {report::Series{"", "red", {{0, 0}, {NAN, 1}, {1, INFINITY}}}});
  CHECK(gap.find("nan") == std::string::npos);
  CHECK(gap.find("inf") == std::string::npos);
}

TEST_CASE("report svg: vanishing and huge ranges draw, tick labels tell ticks apart", "[report]") {
  // Two scores one double apart (their ticks once looped forever) and scores near 1e17.
  const std::string tiny = report::histogram("H", "s", {0.3}, {0.30000000000000004}, 0.3, "t");
  CHECK(count(tiny, "class=\"bar ") == 2);
  const std::string huge = report::histogram("H", "s", {1e17, 1e17}, {1e17}, std::nullopt, "");
  CHECK(huge.find("nan") == std::string::npos);
  CHECK(count(huge, "class=\"bar ") == 2);
  // Ticks over 1412..1418 read 1412, 1414, ... (not 1.41e+03 three times).
  const std::string near = report::line_plot("x", report::Axes{"T", "x", "y", 1412, 1418, 0, 1},
                                             {report::Series{"", "red", {{1412, 0}, {1418, 1}}}});
  CHECK(near.find(">1414</text>") != std::string::npos);
  CHECK(near.find("e+03") == std::string::npos);
  const std::string iters = report::line_plot("x", report::Axes{"T", "x", "y", 100, 1000, 0, 1},
                                              {report::Series{"", "red", {{100, 0}, {1000, 1}}}});
  CHECK(iters.find(">1000</text>") != std::string::npos);
}

TEST_CASE("report svg: histogram bars are shares of each set, the threshold sits at its score", "[report]") {
  // Range 0..10, 10 bins of width 1: normals in bins 0 and 1, anomalies in bin 9.
  const std::string svg = report::histogram("H", "score", {0, 0.5, 1.5, 1.6}, {9.5, 10}, 5.0, "thr", 10);
  CHECK(count(svg, "class=\"bar normal\"") == 2);
  CHECK(count(svg, "class=\"bar anomalous\"") == 1);
  // The threshold 5 of 0..10 lies at x = 58 + 0.5 * 326 = 221.
  CHECK(svg.find("<line class=\"threshold\" x1=\"221.0\"") != std::string::npos);
  CHECK(svg.find(">thr</text>") != std::string::npos);
  // Shares: 2 of 4 normals in each normal bin, 2 of 2 anomalies in theirs, so the anomalies' bar is
  // twice as tall as each normal bar.
  const std::regex bar_height("class=\"bar (normal|anomalous)\"[^>]*height=\"([0-9.]+)\"");
  std::vector<double> heights;
  for (std::sregex_iterator it(svg.begin(), svg.end(), bar_height), end; it != end; ++it)
    heights.push_back(std::stod((*it)[2]));
  REQUIRE(heights.size() == 3);
  CHECK(heights[2] == Approx(2 * heights[0]).epsilon(0.01));
  CHECK(heights[0] == Approx(heights[1]));
  // A threshold beyond the scores is drawn at the edge, and the label says so.
  const std::string far = report::histogram("H", "score", {0, 1}, {2}, 50.0, "thr");
  CHECK(far.find("outside the scores&#39; range") != std::string::npos);
}

TEST_CASE("report: an eval page has the metrics, ROC, PR and histogram with the model's threshold", "[report]") {
  const std::vector<double> s{0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.7, 0.3};
  const std::vector<int> y{0, 0, 1, 1, 0, 1, 0, 1};
  const std::vector<int> flagged{0, 0, 0, 1, 0, 1, 1, 0};  // score > 0.5: the threshold lies in [0.4, 0.7)
  const std::string html = report::render_html(eval_doc(s, y, &flagged).dump(), "ev.json");
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(count(html, "<svg class=\"plot roc\"") == 1);
  CHECK(count(html, "<svg class=\"plot pr\"") == 1);
  CHECK(count(html, "<svg class=\"plot histogram\"") == 1);
  CHECK(count(html, "<line class=\"threshold\"") == 1);
  CHECK(html.find("<td>between 0.4 and 0.7</td>") != std::string::npos);
  // at the midpoint 0.55 of the scores' range 0.1..0.9: x = 58 + 0.5625 * 326
  CHECK(html.find("<line class=\"threshold\" x1=\"241.4\"") != std::string::npos);
  CHECK(html.find("<td>AUROC</td><td>0.7500</td>") != std::string::npos);  // 12 of 16 pairs ordered
  CHECK(html.find("25.0% (1 of 4)") != std::string::npos);  // normal rows flagged: 0.7 only
  CHECK(html.find("<script") == std::string::npos);         // no JavaScript
  CHECK(count(html, "http") == count(html, "http://www.w3.org/2000/svg"));  // nothing fetched
  // The ROC polyline leaves out collinear points: a perfect ranking draws (0,0), (0,1), (1,1);
  // the PR polyline is drawn in steps: (0,1) then (0,1)-(0.5,1), skip, (0.5,2/3)-(1,2/3).
  auto first_points = [](const std::string& page, const std::string& plot) {
    const std::string svg = page.substr(page.find("<svg class=\"plot " + plot + "\""));
    const size_t at = svg.find("points=\"") + 8;
    return count(svg.substr(at, svg.find('"', at) - at), ",");
  };
  CHECK(first_points(report::render_html(eval_doc({1, 2, 3, 4}, {0, 0, 1, 1}).dump(), "e"), "roc") == 3);
  CHECK(first_points(report::render_html(eval_doc({3, 2, 1}, {1, 0, 1}).dump(), "e"), "pr") == 5);
  CHECK(first_points(html, "roc") <= s.size() + 1);

  // Predictions that are no single threshold on the scores (ACR's batch-dependent ones): no line,
  // a note instead.
  const std::vector<int> mixed{1, 0, 0, 1, 0, 1, 1, 0};  // 0.1 flagged, 0.4 not
  const std::string no_line = report::render_html(eval_doc(s, y, &mixed).dump(), "ev.json");
  CHECK(count(no_line, "<line class=\"threshold\"") == 0);
  CHECK(no_line.find("not one threshold") != std::string::npos);
  // Without predictions: no threshold either, and no note.
  CHECK(count(report::render_html(eval_doc(s, y).dump(), "e"), "class=\"threshold\"") == 0);
}

TEST_CASE("report: bad documents are errors naming the document and the field", "[report]") {
  const std::vector<double> s{0.1, 0.9};
  const std::vector<int> y{0, 1};
  CHECK_THROWS_WITH(report::render_html("{not json", "r.json"), Catch::Contains("r.json: not a JSON document"));
  CHECK_THROWS_WITH(report::render_html("{\"auroc\": 1}", "r.json"), Catch::Contains("r.json: no 'kind' field"));
  CHECK_THROWS_WITH(report::render_html("{\"kind\": \"train\"}", "r.json"), Catch::Contains("kind 'train'"));
  json j = eval_doc(s, y);
  j["scores"][1] = nullptr;  // what a NaN becomes in JSON
  CHECK_THROWS_WITH(report::render_html(j.dump(), "r.json"), Catch::Contains("r.json.scores[1]") && Catch::Contains("NaN"));
  j = eval_doc(s, y);
  j["auroc"] = 0.5;  // edited: the page would show two answers
  CHECK_THROWS_WITH(report::render_html(j.dump(), "r.json"), Catch::Contains("auroc 0.5 disagrees"));
  j = eval_doc(s, y);
  j["f1_max"] = 0.5;  // every stored figure is checked, not only AUROC and AP
  CHECK_THROWS_WITH(report::render_html(j.dump(), "r.json"), Catch::Contains("f1_max 0.5 disagrees"));
  j = eval_doc(s, y);
  j["flagged"] = {0, 2};
  CHECK_THROWS_WITH(report::render_html(j.dump(), "r.json"), Catch::Contains("r.json.flagged[1]: 2 is not 0 or 1"));
  CHECK_THROWS_WITH(report::render_html("{\"kind\": \"eval\",}", "r.json"), Catch::Contains("column"));  // where it broke
  j = eval_doc(s, y);
  j["labels"] = {0, 0};
  CHECK_THROWS_WITH(report::render_html(j.dump(), "r.json"), Catch::Contains("both normal"));
  j = eval_doc(s, y);
  j.erase("scores");
  CHECK_THROWS_WITH(report::render_html(j.dump(), "r.json"), Catch::Contains("r.json: no 'scores' field"));
  CHECK_THROWS_WITH(report::render_html("{\"kind\": \"zeroshot\", \"ratios\": []}", "z.json"),
                    Catch::Contains("z.json: no 'folds' field"));
  CHECK_THROWS_WITH(report::render_html("{\"kind\": \"zeroshot\", \"ratios\": [{\"ratio\": 0.1}]}", "z.json"),
                    Catch::Contains("z.json.ratios[0]: no 'acr' field"));
}

TEST_CASE("report: a zero-shot page has per-ratio tables, every batch, and learning curves when recorded", "[report]") {
  json j{{"kind", "zeroshot"}, {"protocol", "FMNIST-ZS"}, {"seed", 0}, {"iters", 20}};
  j["ratios"] = {{{"ratio", 0.05}, {"acr", 0.7}, {"stationary", 0.5}, {"batch_l2", 0.8}, {"knn", 0.9}},
                 {{"ratio", 0.1}, {"acr", 0.7}, {"stationary", 0.5}, {"batch_l2", 0.8}, {"knn", 0.9}}};
  json fold{{"fold", "A"}, {"secs_per_iter", 0.5}};
  for (int b = 0; b < 3; ++b)
    for (double r : {0.05, 0.1})
      fold["batches"].push_back({{"test_class", 5}, {"batch", b}, {"ratio", r}, {"acr", 0.6 + 0.1 * b},
                                 {"stationary", 0.5}, {"batch_l2", 0.8}, {"knn", 0.9}});
  j["folds"] = {fold};
  std::string html = report::render_html(j.dump(), "zs.json");
  CHECK(html.find("normad zero-shot report: FMNIST-ZS") != std::string::npos);
  CHECK(count(html, "<table class=\"ratios\"") == 1);
  CHECK(count(html, "<table class=\"fold\"") == 1);
  // mean (population std) of 0.6, 0.7, 0.8: 0.700 (0.082)
  CHECK(html.find("<td>0.700 (0.082)</td>") != std::string::npos);
  CHECK(count(html, "<svg class=\"plot strip\"") == 1);
  CHECK(count(html, "<circle class=\"dot\"") == 2 * 3 * 4);  // ratios x batches x methods
  CHECK(count(html, "plot learning-curve") == 0);
  CHECK(html.find("not made with --eval-every") != std::string::npos);
  j["folds"][0]["curve"] = {{{"iter", 10}, {"acr", {0.55, 0.5}}}, {{"iter", 20}, {"acr", {0.7, 0.6}}}};
  html = report::render_html(j.dump(), "zs.json");
  CHECK(count(html, "<svg class=\"plot learning-curve\"") == 1);
  CHECK(count(html, "<polyline class=\"curve\"") == 2);  // one line per ratio
  // The stored means over the folds must be those of the batches.
  json edited = j;
  edited["ratios"][1]["acr"] = 0.6;
  CHECK_THROWS_WITH(report::render_html(edited.dump(), "zs.json"),
                    Catch::Contains("zs.json.ratios[1].acr: 0.6 disagrees with the mean of its folds' batches (0.7)"));
  edited = j;
  edited["folds"][0]["fold"] = 7;
  CHECK_THROWS_WITH(report::render_html(edited.dump(), "zs.json"), Catch::Contains("zs.json.folds[0].fold: expected a string"));
  // A document written before there was a "kind" field is still a zero-shot one.
  j.erase("kind");
  CHECK(report::results_kind(j.dump(), "old.json") == "zeroshot");
  j["folds"][0]["curve"][0]["acr"] = {0.5};
  CHECK_THROWS_WITH(report::render_html(j.dump(), "zs.json"), Catch::Contains("1 values for 2 ratios"));
}

TEST_CASE("report: thumbnails, heat maps and PNGs, pixel for pixel", "[report]") {
  test::Scratch dir("normad_report_images");
  // A 20 x 40 image, one colour: the thumbnail keeps its aspect (longer side 10) and its colour.
  std::vector<unsigned char> px(20 * 40 * 3);
  for (size_t i = 0; i < px.size(); i += 3) px[i] = 200, px[i + 1] = 100, px[i + 2] = 40;
  test::write_image(dir("a.png"), 20, 40, 3, px);
  const report::Thumbnail t = report::thumbnail(dir("a.png"), 10);
  REQUIRE(t.height == 5);
  REQUIRE(t.width == 10);
  CHECK(int(t.rgb[0]) == 200);
  CHECK(int(t.rgb[1]) == 100);
  CHECK(int(t.rgb[2]) == 40);
  // A map of ones blends half of pure red over it: (200 + 255) / 2, 100 / 2, 40 / 2; zeros: blue.
  const std::vector<float> ones(4, 1.f), zeros(4, 0.f);
  const report::Thumbnail hot = report::thumbnail(dir("a.png"), 10, &ones, 2, 2);
  CHECK(int(hot.rgb[0]) == 228);  // 227.5 rounds up
  CHECK(int(hot.rgb[1]) == 50);
  CHECK(int(hot.rgb[2]) == 20);
  const report::Thumbnail cold = report::thumbnail(dir("a.png"), 10, &zeros, 2, 2);
  CHECK(int(cold.rgb[0]) == 100);
  CHECK(int(cold.rgb[2]) == 148);  // (40 + 255) / 2 = 147.5
  // A quarter is cyan (0, 255, 255), a half green (0, 255, 0).
  const std::vector<float> quarters(4, 0.25f), halves(4, 0.5f);
  const report::Thumbnail cyan = report::thumbnail(dir("a.png"), 10, &quarters, 2, 2);
  CHECK((int(cyan.rgb[0]) == 100 && int(cyan.rgb[1]) == 178 && int(cyan.rgb[2]) == 148));
  const report::Thumbnail green = report::thumbnail(dir("a.png"), 10, &halves, 2, 2);
  CHECK((int(green.rgb[0]) == 100 && int(green.rgb[1]) == 178 && int(green.rgb[2]) == 20));
  CHECK_THROWS_WITH(report::thumbnail(dir("a.png"), 10, &ones, 3, 3), Catch::Contains("4 values for 3 x 3"));
  // png_bytes writes a PNG that decodes back to the same pixels.
  {
    std::ofstream f(dir("t.png"), std::ios::binary);
    const std::string png = report::png_bytes(hot.rgb, hot.height, hot.width);
    f.write(png.data(), std::streamsize(png.size()));
  }
  const std::vector<float> back = data::load_image_rgb(dir("t.png")).to_vector();  // [3, H, W]
  REQUIRE(back.size() == hot.rgb.size());
  for (int64_t p = 0; p < hot.height * hot.width; ++p)
    for (int c = 0; c < 3; ++c) CHECK(back[size_t(c * hot.height * hot.width + p)] == float(hot.rgb[size_t(p * 3 + c)]));
  CHECK(report::png_data_url(hot.rgb, hot.height, hot.width).rfind("data:image/png;base64,iVBORw0KGgo", 0) == 0);
}

TEST_CASE("report: an mvg eval page has the category table, curves and the image grid", "[report]") {
  test::Scratch dir("normad_report_mvg");
  json j{{"kind", "mvg-eval"}, {"backbone", "resnet18"}, {"mean", 0.5}, {"sem", 0.5}};
  for (const std::string c : {"bottle", "cable"}) {
    json cat{{"train", 10}, {"test", 4}};
    std::vector<double> s;
    std::vector<int> y;
    for (int i = 0; i < 4; ++i) {
      const std::string path = dir(c + std::to_string(i) + ".png");
      test::write_image(path, 16, 16, 3, test::pattern(16, 16, 3));
      json item{{"path", path}, {"name", (i < 2 ? "good/" : "crack/") + std::to_string(i) + ".png"},
                {"score", c == "bottle" ? double(i) : double(3 - i)}, {"label", i < 2 ? 0 : 1}};
      if (i == 3) item["map"] = {{"height", 2}, {"width", 2}, {"values", {0, 0.5, 1, 1}}};
      s.push_back(item["score"]), y.push_back(item["label"]);
      cat["items"].push_back(item);
    }
    cat["auroc"] = eval::auroc(s, y);
    j["categories"][c] = cat;
  }
  const std::string html = report::render_html(j.dump(), "mvg.json");
  CHECK(html.find("<td>bottle</td><td>10</td><td>4</td><td>100.0</td>") != std::string::npos);
  CHECK(html.find("<td>cable</td><td>10</td><td>4</td><td>0.0</td>") != std::string::npos);
  CHECK(html.find("50.0 ± 50.0") != std::string::npos);  // AUROCs 1 and 0
  CHECK(count(html, "<svg class=\"plot roc\"") == 1);
  CHECK(count(html, "<polyline class=\"curve\"") >= 4);  // two categories on each of ROC and PR
  CHECK(count(html, "<img ") == 8);                        // all 4 test images of each category
  CHECK(count(html, "src=\"data:image/png;base64,") == 8);
  CHECK(count(html, "<figure class=\"anomalous\"") == 4);
  // Highest score first: bottle's crack/3.png (score 3) leads its grid.
  const size_t bottle = html.find("<h3>bottle</h3>");
  CHECK(html.find("crack/3.png", bottle) < html.find("good/0.png", bottle));
  // Stored figures that disagree with the items, and malformed items, are errors naming them.
  json bad = j;
  bad["categories"]["bottle"]["auroc"] = 0.5;
  CHECK_THROWS_WITH(report::render_html(bad.dump(), "mvg.json"), Catch::Contains("mvg.json.categories.bottle: its auroc 0.5 disagrees"));
  bad = j;
  bad["mean"] = 0.75;
  CHECK_THROWS_WITH(report::render_html(bad.dump(), "mvg.json"), Catch::Contains("mean / sem disagree"));
  bad = j;
  bad["categories"]["cable"]["test"] = 5;
  CHECK_THROWS_WITH(report::render_html(bad.dump(), "mvg.json"), Catch::Contains("4 items for its test count 5"));
  bad = j;
  bad["categories"]["cable"]["items"][0]["label"] = 2;
  CHECK_THROWS_WITH(report::render_html(bad.dump(), "mvg.json"),
                    Catch::Contains("mvg.json.categories.cable.items[0].label: 2 is not an integer in [0, 1]"));
  bad = j;
  bad["categories"]["bottle"]["items"][3]["map"]["values"][1] = 1.5;
  CHECK_THROWS_WITH(report::render_html(bad.dump(), "mvg.json"), Catch::Contains("items[3].map: a value 1.5 is outside [0, 1]"));
  bad = j;
  bad["categories"]["bottle"]["items"][3]["name"] = 12;
  CHECK_THROWS_WITH(report::render_html(bad.dump(), "mvg.json"), Catch::Contains("items[3].name: expected a string"));
  // An image that is gone is an error naming it, not a page with a hole.
  std::filesystem::remove(dir("bottle3.png"));
  CHECK_THROWS_WITH(report::render_html(j.dump(), "mvg.json"), Catch::Contains("bottle3.png"));
}

TEST_CASE("normad report: the page of the --json file equals eval --report, byte for byte", "[report][cli]") {
  test::Scratch dir("normad_report_cli");
  {
    std::ofstream scores(dir("scores.csv")), labels(dir("labels.csv"));
    scores << "index,score,prediction\n";
    labels << "x,label\n";
    const double s[] = {0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.7, 0.3};
    const int y[] = {0, 0, 1, 1, 0, 1, 0, 1};
    for (int i = 0; i < 8; ++i) scores << i << "," << s[i] << "," << (s[i] > 0.5) << "\n", labels << i << "," << y[i] << "\n";
  }
  const auto ev = test::run("eval --scores " + dir("scores.csv") + " --labels " + dir("labels.csv") + " --json " +
                            dir("r.json") + " --report " + dir("a.html"));
  INFO(ev.out);
  REQUIRE(ev.rc == 0);
  CHECK(ev.out.find("wrote the report") != std::string::npos);
  const auto rep = test::run("report " + dir("r.json") + " --out " + dir("b.html"));
  INFO(rep.out);
  REQUIRE(rep.rc == 0);
  CHECK(read(dir("a.html")) == read(dir("b.html")));
  CHECK(read(dir("a.html")).find("<svg class=\"plot histogram\"") != std::string::npos);
  // The results document carries every score and label in the scores file's order.
  const json doc = json::parse(read(dir("r.json")));
  CHECK(doc["kind"] == "eval");
  CHECK(doc["scores"].size() == 8);
  CHECK(doc["flagged"][3] == 1);
  // Errors: a file that is no results document, a report over an input, a missing file.
  std::ofstream(dir("other.json")) << "{\"rows\": 3}";
  const auto bad = test::run("report " + dir("other.json") + " --out " + dir("c.html"));
  CHECK(bad.rc == 2);
  CHECK(bad.out.find("other.json: no 'kind' field") != std::string::npos);
  CHECK(!std::filesystem::exists(dir("c.html")));
  const auto over = test::run("eval --scores " + dir("scores.csv") + " --labels " + dir("labels.csv") + " --report " +
                              dir("scores.csv"));
  CHECK(over.rc == 2);
  CHECK(over.out.find("--report") != std::string::npos);
  CHECK(test::run("report " + dir("missing.json") + " --out " + dir("d.html")).rc == 2);
  const auto folder = test::run("report " + dir.dir.string() + " --out " + dir("d.html"));
  CHECK(folder.rc == 2);
  CHECK(folder.out.find("a directory, not a results document") != std::string::npos);
  // An empty file name is an error, not a run that silently writes no report.
  const auto empty = test::run("eval --scores " + dir("scores.csv") + " --labels " + dir("labels.csv") + " --report ''");
  CHECK(empty.rc == 2);
  CHECK(empty.out.find("--report: the file name is empty") != std::string::npos);
}
