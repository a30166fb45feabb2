// normad report plots: line plots, histograms and strip plots written as inline SVG text (no
// JavaScript, no fonts beyond the browser's sans-serif), for report/report.cpp.
// Math: a data point (x, y) maps linearly to the plot box: px = left + (x - x0) / (x1 - x0) * width,
// py = top + (1 - (y - y0) / (y1 - y0)) * height; axis ticks step by 1, 2 or 5 x 10^k.
// Tested by tests/test_report.cpp (the elements, classes and pixel positions of small plots) and in a
// browser by tests/report_chromium.sh.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace normad::report {

// Text made safe inside SVG / HTML elements and attribute values (& < > " ').
std::string xml_escape(const std::string& text);
// A colour for the i-th series (a 10-colour qualitative palette, then repeating).
std::string palette(size_t i);
// A number as short text for labels: up to `digits` significant digits, no trailing zeros.
std::string short_number(double value, int digits = 3);

// One polyline of a line plot, in data coordinates.
struct Series {
  std::string label;                              // legend text (empty: no legend entry)
  std::string color;                              // CSS colour
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in this order
  bool dashed = false;
  bool markers = false;                           // a dot on every point
};

// The data range and labels of one plot; a range with x0 == x1 (or y0 == y1) is widened.
struct Axes {
  std::string title, x_label, y_label;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
};

// The range [lo, hi] of every point's x (or y) in `series`, padded by 5% (a single value: +-0.5).
std::pair<double, double> data_range(const std::vector<Series>& series, bool y_axis);

// An SVG line plot (class "plot <css_class>"): axes with ticks, one <polyline class="curve"> per
// series, a legend, and the chance diagonal y = x as a dashed grey line when `diagonal`.
std::string line_plot(const std::string& css_class, const Axes& axes, const std::vector<Series>& series,
                      bool diagonal = false);

// An SVG histogram (class "plot histogram") of two score sets on shared bins over their joint range:
// bar height = the share of that set's scores in the bin, so sets of different sizes compare; normal
// bars blue, anomalous red, both half transparent. `threshold`, when given, is a dashed vertical
// <line class="threshold"> with `threshold_label` beside it (a threshold outside the scores' range
// is drawn at the nearer edge, its label says so).
std::string histogram(const std::string& title, const std::string& x_label, const std::vector<double>& normal,
                      const std::vector<double>& anomalous, std::optional<double> threshold,
                      const std::string& threshold_label, int bins = 30);

// An SVG strip plot (class "plot strip"): for each group (e.g. an anomaly ratio) and each method, its
// values as dots (<circle class="dot">) spread sideways by a fixed pattern, and their mean as a short
// bar (<line class="mean">). values[g][m] are group g's values for method m.
std::string strip_plot(const std::string& title, const std::string& y_label, const std::vector<std::string>& groups,
                       const std::vector<std::pair<std::string, std::string>>& methods,  // (label, colour)
                       const std::vector<std::vector<std::vector<double>>>& values, double y0, double y1);

}  // namespace normad::report
