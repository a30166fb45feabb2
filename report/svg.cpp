// normad report plots (see report/svg.h): every plot is one <svg> element of fixed pixel size with
// a plot box, axes, ticks, labels and the data drawn in it.
// Tested by tests/test_report.cpp and tests/report_chromium.sh.
#include "report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "tensor/tensor.h"

namespace normad::report {

namespace {

// The plot's size in pixels and its margins (room for tick labels, axis labels and the title).
constexpr double kWidth = 400, kHeight = 320, kLeft = 58, kRight = 16, kTop = 30, kBottom = 48;

std::string fmt(double v) {  // a pixel coordinate
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

// Linear map of the data range onto the plot box.
struct Frame {
  double x0, x1, y0, y1;
  double width = kWidth, right = kRight;  // a wider plot (the strip plot) or room on the right
  double px(double x) const { return kLeft + (x - x0) / (x1 - x0) * (width - kLeft - right); }
  double py(double y) const { return kTop + (1 - (y - y0) / (y1 - y0)) * (kHeight - kTop - kBottom); }
};

// Widens an empty or vanishing range (narrower than a billionth of its magnitude, where ticks and
// bins would fall below the doubles' spacing) so that the map above never divides by zero.
void widen(double& lo, double& hi) {
  if (!std::isfinite(hi - lo))
    throw Error("report: values from " + short_number(lo) + " to " + short_number(hi) + " span more than a double holds");
  const double magnitude = std::max(std::abs(lo), std::abs(hi));
  if (hi - lo > 1e-9 * magnitude && hi > lo) return;
  const double mid = lo / 2 + hi / 2, half = std::max(0.5, 1e-6 * magnitude);
  lo = mid - half, hi = mid + half;
}

// Tick positions inside [lo, hi]: about five, at multiples of 1, 2 or 5 x 10^k (at most 20, counted
// by an integer so that the loop ends whatever the rounding), and the significant digits their
// labels need to differ (1412, 1414, ... rather than 1.41e+03 four times).
struct Ticks {
  std::vector<double> at;
  int digits = 3;
};
Ticks ticks(double lo, double hi) {
  const double raw = (hi - lo) / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  Ticks t;
  const int64_t k0 = int64_t(std::ceil(lo / step - 1e-9)), k1 = int64_t(std::floor(hi / step + 1e-9));
  for (int64_t k = k0; k <= k1 && t.at.size() < 20; ++k) t.at.push_back(k == 0 ? 0.0 : double(k) * step);
  const double largest = std::max(std::abs(lo), std::abs(hi));
  const int to_tell_apart = int(std::ceil(std::log10(std::max(largest / step, 1.0)))) + 1;
  const int integer_digits = largest >= 1 ? int(std::floor(std::log10(largest))) + 1 : 1;  // 1000, not 1e+03
  t.digits = std::clamp(std::max(to_tell_apart, integer_digits), 3, 12);
  return t;
}

// The opening <svg>, its title and the plot box with ticks, grid lines and axis labels.
// x_ticks false: no numeric x tick labels (the strip plot writes group names there instead).
std::string open_plot(const std::string& css_class, const Axes& a, const Frame& f, bool x_ticks = true) {
  std::string s = "<svg class=\"plot " + css_class + "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt(f.width) +
                  "\" height=\"" + fmt(kHeight) + "\" viewBox=\"0 0 " + fmt(f.width) + " " + fmt(kHeight) +
                  "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  s += "<text class=\"title\" x=\"" + fmt(f.width / 2) + "\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">" +
       xml_escape(a.title) + "</text>\n";
  s += "<rect class=\"frame\" x=\"" + fmt(kLeft) + "\" y=\"" + fmt(kTop) + "\" width=\"" + fmt(f.width - kLeft - f.right) +
       "\" height=\"" + fmt(kHeight - kTop - kBottom) + "\" fill=\"white\" stroke=\"#333\"/>\n";
  const Ticks tx = ticks(f.x0, f.x1), ty = ticks(f.y0, f.y1);
  for (double t : x_ticks ? tx.at : std::vector<double>{}) {
    const std::string x = fmt(f.px(t));
    s += "<line class=\"grid\" x1=\"" + x + "\" y1=\"" + fmt(kTop) + "\" x2=\"" + x + "\" y2=\"" + fmt(kHeight - kBottom) +
         "\" stroke=\"#e4e4e4\"/><text x=\"" + x + "\" y=\"" + fmt(kHeight - kBottom + 14) + "\" text-anchor=\"middle\">" +
         short_number(t, tx.digits) + "</text>\n";
  }
  for (double t : ty.at) {
    const std::string y = fmt(f.py(t));
    s += "<line class=\"grid\" x1=\"" + fmt(kLeft) + "\" y1=\"" + y + "\" x2=\"" + fmt(f.width - f.right) + "\" y2=\"" + y +
         "\" stroke=\"#e4e4e4\"/><text x=\"" + fmt(kLeft - 5) + "\" y=\"" + fmt(f.py(t) + 4) + "\" text-anchor=\"end\">" +
         short_number(t, ty.digits) + "</text>\n";
  }
  s += "<text class=\"x-label\" x=\"" + fmt((kLeft + f.width - f.right) / 2) + "\" y=\"" + fmt(kHeight - 10) +
       "\" text-anchor=\"middle\">" + xml_escape(a.x_label) + "</text>\n";
  s += "<text class=\"y-label\" transform=\"translate(14," + fmt((kTop + kHeight - kBottom) / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">" + xml_escape(a.y_label) + "</text>\n";
  return s;
}

// A legend in the plot box's lower right corner (ROC curves leave it free), one row per entry.
// With room on the right (f.right > 100) the legend sits there, outside the data.
std::string legend(const std::vector<std::pair<std::string, std::string>>& entries, const Frame& f) {  // (label, colour)
  if (entries.empty()) return "";
  const bool outside = f.right > 100;
  const double x = outside ? f.width - f.right + 10 : f.width - f.right - 150;
  double y = outside ? kTop + 12 : kHeight - kBottom - 8 - 14.0 * double(entries.size() - 1);
  // a white backing so that the entries stay readable over bars and dots
  std::string s = "<rect class=\"legend-box\" x=\"" + fmt(x - 4) + "\" y=\"" + fmt(y - 12) + "\" width=\"" +
                  fmt(outside ? f.right - 14 : 148) + "\" height=\"" + fmt(14.0 * double(entries.size()) + 4) +
                  "\" fill=\"white\" fill-opacity=\"0.85\"/>\n";
  for (const auto& [label, color] : entries) {
    s += "<g class=\"legend\"><rect x=\"" + fmt(x) + "\" y=\"" + fmt(y - 8) + "\" width=\"12\" height=\"8\" fill=\"" +
         color + "\"/><text x=\"" + fmt(x + 16) + "\" y=\"" + fmt(y) + "\">" + xml_escape(label) + "</text></g>\n";
    y += 14;
  }
  return s;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string palette(size_t i) {
  // Tableau's 10 colours (matplotlib's default cycle), so the plots look as Python users expect.
  static const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return colors[i % 10];
}

std::string short_number(double value, int digits) {
  char b[48];
  std::snprintf(b, sizeof b, "%.*g", digits, value);
  return b;
}

std::pair<double, double> data_range(const std::vector<Series>& series, bool y_axis) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Series& s : series)
    for (const auto& p : s.points) {
      const double v = y_axis ? p.second : p.first;
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
  if (!(hi >= lo)) return {0, 1};  // no finite point
  if (hi == lo) return {lo - 0.5, hi + 0.5};
  const double pad = (hi - lo) * 0.05;
  return {lo - pad, hi + pad};
}

std::string line_plot(const std::string& css_class, const Axes& axes, const std::vector<Series>& series, bool diagonal) {
  size_t entries_wanted = 0;
  for (const Series& ser : series) entries_wanted += !ser.label.empty();
  Frame f{axes.x0, axes.x1, axes.y0, axes.y1};
  if (entries_wanted > 4) f.width += 150, f.right += 150;  // many series: the legend beside the plot
  widen(f.x0, f.x1);
  widen(f.y0, f.y1);
  std::string s = open_plot(css_class, axes, f);
  if (diagonal)  // the chance line of a ROC plot
    s += "<line class=\"chance\" x1=\"" + fmt(f.px(0)) + "\" y1=\"" + fmt(f.py(0)) + "\" x2=\"" + fmt(f.px(1)) +
         "\" y2=\"" + fmt(f.py(1)) + "\" stroke=\"#aaa\" stroke-dasharray=\"4 3\"/>\n";
  std::vector<std::pair<std::string, std::string>> entries;
  for (const Series& ser : series) {
    std::string pts;
    for (const auto& [x, y] : ser.points)
      if (std::isfinite(x) && std::isfinite(y)) pts += fmt(f.px(x)) + "," + fmt(f.py(y)) + " ";
    s += "<polyline class=\"curve\" fill=\"none\" stroke=\"" + ser.color + "\" stroke-width=\"1.8\"" +
         (ser.dashed ? " stroke-dasharray=\"6 3\"" : "") + " points=\"" + pts + "\"><title>" + xml_escape(ser.label) +
         "</title></polyline>\n";
    if (ser.markers)
      for (const auto& [x, y] : ser.points)
        if (std::isfinite(x) && std::isfinite(y))
          s += "<circle class=\"marker\" cx=\"" + fmt(f.px(x)) + "\" cy=\"" + fmt(f.py(y)) + "\" r=\"2.5\" fill=\"" +
               ser.color + "\"/>\n";
    if (!ser.label.empty()) entries.emplace_back(ser.label, ser.color);
  }
  return s + legend(entries, f) + "</svg>\n";
}

std::string histogram(const std::string& title, const std::string& x_label, const std::vector<double>& normal,
                      const std::vector<double>& anomalous, std::optional<double> threshold,
                      const std::string& threshold_label, int bins) {
  // Shared bins over the joint range of the finite scores.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto* set : {&normal, &anomalous})
    for (double v : *set)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!(hi >= lo)) lo = 0, hi = 1;
  widen(lo, hi);
  const double width = (hi - lo) / bins;
  auto shares = [&](const std::vector<double>& set) {  // share of the set's scores in each bin
    std::vector<double> h(size_t(bins), 0.0);
    for (double v : set)
      if (std::isfinite(v)) h[size_t(std::clamp(int((v - lo) / width), 0, bins - 1))] += 1.0 / double(set.size());
    return h;
  };
  const std::vector<double> hn = shares(normal), ha = shares(anomalous);
  double top = 0;
  for (size_t b = 0; b < size_t(bins); ++b) top = std::max({top, hn[b], ha[b]});
  Frame f{lo, hi, 0, top > 0 ? top * 1.08 : 1, kWidth + 130, kRight + 130};  // the legend beside the bars
  std::string s = open_plot("histogram", Axes{title, x_label, "share of its class", lo, hi, 0, f.y1}, f);
  auto bars = [&](const std::vector<double>& h, const std::string& color, const std::string& cls) {
    for (size_t b = 0; b < size_t(bins); ++b) {
      if (h[b] == 0) continue;
      const double x0 = f.px(lo + double(b) * width), x1 = f.px(lo + double(b + 1) * width);
      s += "<rect class=\"bar " + cls + "\" x=\"" + fmt(x0) + "\" y=\"" + fmt(f.py(h[b])) + "\" width=\"" +
           fmt(x1 - x0) + "\" height=\"" + fmt(f.py(0) - f.py(h[b])) + "\" fill=\"" + color + "\" fill-opacity=\"0.5\"/>\n";
    }
  };
  bars(hn, "#1f77b4", "normal");
  bars(ha, "#d62728", "anomalous");
  if (threshold) {
    const double t = std::clamp(*threshold, lo, hi);
    const std::string label = threshold_label + (t != *threshold ? " (outside the scores' range)" : "");
    const std::string x = fmt(f.px(t));
    s += "<line class=\"threshold\" x1=\"" + x + "\" y1=\"" + fmt(kTop) + "\" x2=\"" + x + "\" y2=\"" +
         fmt(kHeight - kBottom) + "\" stroke=\"black\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\n";
    const bool right_half = f.px(t) > (kLeft + f.width - f.right) / 2;  // label on the roomier side
    s += "<text class=\"threshold-label\" x=\"" + fmt(f.px(t) + (right_half ? -4 : 4)) + "\" y=\"" + fmt(kTop + 14) +
         "\" text-anchor=\"" + (right_half ? "end" : "start") + "\">" + xml_escape(label) + "</text>\n";
  }
  std::vector<std::pair<std::string, std::string>> entries{
      {"normal (" + std::to_string(normal.size()) + ")", "#1f77b4"},
      {"anomalous (" + std::to_string(anomalous.size()) + ")", "#d62728"}};
  return s + legend(entries, f) + "</svg>\n";
}

std::string strip_plot(const std::string& title, const std::string& y_label, const std::vector<std::string>& groups,
                       const std::vector<std::pair<std::string, std::string>>& methods,
                       const std::vector<std::vector<std::vector<double>>>& values, double y0, double y1) {
  // x: group g spans [g, g + 1); method m's dots sit at g + (m + 1) / (M + 1) with a small spread.
  const double n_groups = double(std::max<size_t>(groups.size(), 1)), n_methods = double(methods.size());
  Frame f{0, n_groups, y0, y1, kLeft + 150 * n_groups + 130, 130};  // 150 px per group, the legend on the right
  widen(f.y0, f.y1);
  std::string s = open_plot("strip", Axes{title, "", y_label, 0, n_groups, f.y0, f.y1}, f, false);
  for (size_t g = 0; g < groups.size(); ++g) {
    s += "<text class=\"group\" x=\"" + fmt(f.px(double(g) + 0.5)) + "\" y=\"" + fmt(kHeight - kBottom + 14) +
         "\" text-anchor=\"middle\">" + xml_escape(groups[g]) + "</text>\n";
    if (g > 0)
      s += "<line x1=\"" + fmt(f.px(double(g))) + "\" y1=\"" + fmt(kTop) + "\" x2=\"" + fmt(f.px(double(g))) +
           "\" y2=\"" + fmt(kHeight - kBottom) + "\" stroke=\"#bbb\"/>\n";
    for (size_t m = 0; m < methods.size() && g < values.size() && m < values[g].size(); ++m) {
      const std::vector<double>& v = values[g][m];
      const double centre = double(g) + double(m + 1) / (n_methods + 1), spread = 0.3 / (n_methods + 1);
      double sum = 0;
      size_t finite = 0;
      for (size_t i = 0; i < v.size(); ++i) {
        if (!std::isfinite(v[i])) continue;
        // a fixed sideways pattern (no random jitter: the same page every time)
        const double dx = spread * (double(int(i % 7)) / 3.0 - 1.0);
        s += "<circle class=\"dot\" cx=\"" + fmt(f.px(centre + dx)) + "\" cy=\"" + fmt(f.py(v[i])) +
             "\" r=\"2\" fill=\"" + methods[m].second + "\" fill-opacity=\"0.55\"/>\n";
        sum += v[i], ++finite;
      }
      if (finite) {
        const double mean = sum / double(finite);
        s += "<line class=\"mean\" x1=\"" + fmt(f.px(centre - spread * 1.4)) + "\" y1=\"" + fmt(f.py(mean)) + "\" x2=\"" +
             fmt(f.px(centre + spread * 1.4)) + "\" y2=\"" + fmt(f.py(mean)) + "\" stroke=\"black\" stroke-width=\"2\"><title>" +
             xml_escape(methods[m].first + " mean " + short_number(mean)) + "</title></line>\n";
      }
    }
  }
  return s + legend(methods, f) + "</svg>\n";
}

}  // namespace normad::report
