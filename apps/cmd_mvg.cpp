// `normad mvg`: Gaussian-AD (gaussian_ad.md): `fit` a multivariate Gaussian per feature level on
// normal images or a features CSV, with a decision threshold on held-out or reference normal data;
// `score` images or features with a model file (normad::ImageDetector, the API's path); `eval` on
// MVTec AD (fit on train/good, image AUROC on test, per category).
// Math: score(x) = (1/L) Σ_l Mahalanobis_l(f_l(x)). Tested by tests/test_cli_images.cpp,
// tests/test_gaussian_ad.cpp and tests/test_detect.cpp (API = CLI).
#include <json.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "apps/cli_commands.h"
#include "apps/cli_images.h"
#include "apps/cli_util.h"
#include "detect/image_detector.h"
#include "eval/metrics.h"
#include "tensor/comm.h"
#include "tensor/ops.h"

namespace normad::cli {

namespace {

void run_mvg(ImageArgs& a, CLI::App* fit_cmd, CLI::App* score_cmd, CLI::App* eval_cmd, const CommonOptions& common) {
  apply_max_image_pixels(a);
  if (*fit_cmd) {
    const auto o = gaussian_options(a, fit_cmd->count("--pca") > 0, fit_cmd->count("--npca") > 0);
    if (!(a.fpr > 0 && a.fpr < 1)) throw Error("--fpr: must be in (0, 1), got " + num(a.fpr));
    if (!a.reference.empty() && fit_cmd->count("--calibration"))
      throw Error("--calibration and --reference: give one (held-out training rows, or separate normal data)");
    const uint64_t seed = fit_cmd->get_option("--seed")->as<uint64_t>();
    const std::string rule = a.reference.empty() ? "calibration" : "reference";
    const std::string source = source_name(a, "train/good");
    // normad::ImageDetector's fit (detect/image_detector.h), the same path the API takes.
    ImageFitOptions fo;
    fo.gaussian = o, fo.fpr = a.fpr, fo.calibration = a.calibration, fo.seed = seed, fo.device = compute_device();
    fo.comm = &world();  // under mpirun: each rank extracts its share of the images
    Progress p{"fit", false}, pr{"threshold", false};
    fo.fit_progress = std::ref(p), fo.threshold_progress = std::ref(pr);
    std::optional<ImageDetector> det;
    if (!a.features.empty()) {
      if (!a.images.empty() || !a.mvtec.empty() || !a.backbone.empty() || !a.weights.empty() || !a.levels.empty() ||
          a.size || a.crop)
        throw Error("--features: give either a features CSV or images with --backbone (and its pipeline options), not both");
      const models::FeaturesCsv t = models::read_features_csv(a.features);
      std::optional<models::FeaturesCsv> ref;
      if (!a.reference.empty()) ref = models::read_features_csv(a.reference);
      det.emplace(ImageDetector::fit_features(t, a.features, fo, ref ? &*ref : nullptr, a.reference));
    } else {
      if (a.backbone.empty() || a.weights.empty()) throw Error("mvg fit: give --features CSV, or --backbone and --weights with images");
      const std::vector<data::ImageItem> items = source_items(a, "train");
      const std::vector<std::string> reference =
          a.reference.empty() ? std::vector<std::string>{} : data::item_paths(dir_items(a.reference, "--reference"));
      det.emplace(ImageDetector::fit(feature_spec(a), data::item_paths(items), fo, reference, source, a.reference));
    }
    const models::GaussianAd& m = det->model();
    const int64_t rows = det->fit_summary().rows, fit_rows = det->fit_summary().fit_rows;
    outputs_barrier();
    if (writes_outputs()) det->save(a.out);  // every rank holds the same model; rank 0 writes it
    std::printf("fitted %zu level(s) on %lld of the %lld rows of %s (reduction %s), wrote %s\n", m.levels.size(),
                (long long)fit_rows, (long long)rows, source.c_str(), o.reduction.c_str(), a.out.c_str());
    std::printf("decision threshold (sets the labels), rule %s%s: %s\n", rule.c_str(),
                rule == "calibration" ? (" (--calibration " + num(a.calibration) + ", --seed " +
                                         std::to_string(seed) + ": rows held out of the fit)").c_str()
                                      : (" (" + a.reference + ")").c_str(),
                m.threshold.describe().c_str());
    std::printf("chi-square thresholds per level (information only, no labels: each keeps %g of a level's normal "
                "data only if its features were Gaussian with the fitted mean and covariance):\n", 1 - a.fpr);
    for (size_t l = 0; l < m.levels.size(); ++l)
      std::printf("  level %zu: %lld -> %lld dims, shrinkage %.4g, chi2 threshold %.4g\n", l,
                  (long long)m.levels[l].dim, (long long)m.levels[l].reduced, m.levels[l].shrinkage,
                  m.chi2_thresholds[l]);
    if (!common.json.empty()) {
      nlohmann::json js{{"rows", rows}, {"fit_rows", fit_rows}, {"levels", m.levels.size()},
                        {"reduction", o.reduction}, {"fpr", a.fpr}, {"chi2_thresholds", m.chi2_thresholds},
                        {"out", a.out}};
      js["threshold"] = {{"value", m.threshold.threshold}, {"rule", m.threshold.rule},
                         {"target", m.threshold.target}, {"achieved", m.threshold.achieved},
                         {"rows", m.threshold.rows}};
      for (const auto& lv : m.levels) js["shrinkage"].push_back(lv.shrinkage), js["dims"].push_back(lv.reduced);
      write_json(common.json, js);
    }
    return;
  }
  if (*score_cmd) {
    // normad::ImageDetector's scoring (detect/image_detector.h), the same path the API takes.
    ImageDetector det = ImageDetector::load(a.model, compute_device(), a.weights, a.batch);
    const models::GaussianAd& m = det.model();
    std::vector<std::string> names;
    std::vector<double> scores;
    if (!a.features.empty()) {
      if (!a.images.empty() || !a.mvtec.empty()) throw Error("--features: give either a features CSV or images, not both");
      const models::FeaturesCsv t = models::read_features_csv(a.features);
      names = t.table.labels;
      scores = det.score_features(t, a.features);
    } else {
      det.extractor();  // the weights and the pipeline are checked before the images are listed
      const std::vector<data::ImageItem> items = source_items(a, a.score_split);
      Progress p{"score", false};
      names = item_names(items);
      scores = det.score_images(data::item_paths(items), std::ref(p), names, source_name(a, a.score_split),
                                &world());  // under mpirun: each rank its share, rank 0 writes them all
    }
    const double thr = m.decision_threshold();
    outputs_barrier();
    write_scores(a.out, names, scores, thr);
    int64_t flagged = 0;
    for (double s : scores) flagged += s > thr;
    std::printf("scored %zu rows, %lld above the decision threshold %.6g (rule %s: fpr %g on %lld normal rows), "
                "wrote %s\n", scores.size(), (long long)flagged, thr, m.threshold.rule.c_str(), m.threshold.target,
                (long long)m.threshold.rows, a.out.c_str());
    if (!common.json.empty())
      write_json(common.json, nlohmann::json({{"rows", scores.size()}, {"flagged", flagged}, {"threshold", thr},
                                          {"threshold_rule", m.threshold.rule}, {"out", a.out}}));
    return;
  }
  if (*eval_cmd) {
    if (a.all == !a.category.empty()) throw Error("mvg eval: give exactly one of --category C and --all");
    const auto o = gaussian_options(a, eval_cmd->count("--pca") > 0, eval_cmd->count("--npca") > 0);
    const std::vector<std::string> cats =
        a.all ? data::mvtec_categories(a.mvtec) : std::vector<std::string>{a.category};
    if (cats.empty()) throw Error(a.mvtec + ": no category with train/good");
    models::FeatureExtractor fx(feature_spec(a));
    const std::string levels = join_list(fx.spec().levels);
    std::printf("Gaussian-AD on MVTec AD: %s levels %s, %dx%d %s%s, reduction %s%s, one fit on all train/good "
                "images per category\n",
                fx.spec().backbone.c_str(), levels.c_str(), fx.spec().prep.size,
                fx.spec().prep.size, fx.spec().prep.filter.c_str(),
                fx.spec().prep.crop ? (", crop " + std::to_string(fx.spec().prep.crop)).c_str() : "",
                o.reduction.c_str(), o.reduction == "none" ? "" : (" " + num(o.variance)).c_str());
    nlohmann::json js{{"kind", "mvg-eval"}, {"mvtec", a.mvtec}, {"backbone", fx.spec().backbone}, {"weights", fx.spec().weights},
                      {"levels", fx.spec().levels}, {"reduction", o.reduction}};
    std::vector<double> aurocs;
    for (const std::string& c : cats) {
      const auto train = data::mvtec_items(a.mvtec, c, "train"), test = data::mvtec_items(a.mvtec, c, "test");
      Progress pf{c + " fit", false}, ps{c + " test", false};
      const models::GaussianAd m =
          models::fit_images(fx, data::item_paths(train), o, std::ref(pf));
      const std::vector<double> s =
          models::score_images(fx, m, data::item_paths(test), std::ref(ps));
      check_finite_scores(s, item_names(test), (std::filesystem::path(a.mvtec) / c / "test").string());
      const double auc = eval::auroc(s, data::item_labels(test));
      aurocs.push_back(auc);
      std::printf("%-12s train %4zu  test %4zu  image AUROC %.1f\n", c.c_str(), train.size(), test.size(), 100 * auc);
      js["categories"][c] = {{"auroc", auc}, {"train", train.size()}, {"test", test.size()}};
      // every test image with its score and label, for the report's curves and image grid
      for (size_t i = 0; i < test.size(); ++i)
        js["categories"][c]["items"].push_back(
            {{"path", std::filesystem::absolute(test[i].path).string()}, {"name", test[i].name}, {"score", s[i]},
             {"label", test[i].label}});  // absolute: `normad report` may run from elsewhere
    }
    if (a.all) {
      double mean = 0;
      for (double v : aurocs) mean += v / double(aurocs.size());
      std::printf("%-12s %zu categories  image AUROC %.1f ± %.1f (mean ± SEM)\n", "mean", aurocs.size(), 100 * mean,
                  100 * eval::standard_error(aurocs));
      js["mean"] = mean;
      js["sem"] = eval::standard_error(aurocs);
    }
    write_results(js, {common.json, a.report});
    return;
  }
}

}  // namespace

Command add_mvg(CLI::App& app, const AddCommon& add_common, const CommonOptions& common) {
  auto a = std::make_shared<ImageArgs>();
  auto* mvg = app.add_subcommand("mvg", "Gaussian-AD: a multivariate Gaussian per feature level, Mahalanobis scores (gaussian_ad.md)");
  mvg->require_subcommand(1);
  auto* fit_cmd = mvg->add_subcommand("fit", "fit on normal images or features and write a model file");
  add_common(fit_cmd);
  fit_cmd->add_option("--features", a->features, "a features CSV (from normad features: its levels and pipeline) instead of images");
  fit_cmd->add_option("--backbone", a->backbone, "with images: the backbone");
  add_pipeline_options(fit_cmd, *a, false);
  add_source_options(fit_cmd, *a);
  fit_cmd->add_option("--calibration", a->calibration,
                   "hold out this fraction of the training images (or rows), drawn with --seed; the Gaussian is fitted "
                   "on the rest and the decision threshold is the conformal (1 - fpr) quantile of the held-out scores")
      ->capture_default_str();
  fit_cmd->add_option("--reference", a->reference,
                   "instead of --calibration: fit on all training data and set the decision threshold on these normal "
                   "data (an image directory, or a features CSV with --features)");
  fit_cmd->add_option("--pca", a->pca, "keep the leading components explaining > T of the variance");
  fit_cmd->add_option("--npca", a->npca, "drop the leading components explaining T of the variance (NPCA; 0.99 = 'NPCA 1%')");
  fit_cmd->add_option("--fpr", a->fpr,
                   "share of new normal data the decision threshold may flag, set by a conformal quantile (at most fpr "
                   "is guaranteed from 1/fpr - 1 held-out rows on, 19 at 0.05; below 2/fpr - 1, 39 at 0.05, the "
                   "threshold is their maximum)")
      ->capture_default_str();
  fit_cmd->add_flag("--f32-cutoff", a->f32_cutoff, "pinvh with float32's cut-off, as the reference on float32 features");
  fit_cmd->add_option("--out", a->out, "model file (.safetensors)")->required();

  auto* score_cmd = mvg->add_subcommand("score", "score images or features with a model; writes name,score,prediction (1: above the threshold)");
  add_common(score_cmd);
  score_cmd->add_option("--model", a->model, "model file from mvg fit")->required();
  score_cmd->add_option("--features", a->features, "a features CSV");
  score_cmd->add_option("--weights", a->weights, "with images: the model's weights at another path (checked by SHA-256)");
  score_cmd->add_option("--batch", a->batch, "images per forward pass")->capture_default_str();
  add_source_options(score_cmd, *a);
  score_cmd->add_option("--split", a->score_split, "with --mvtec: train or test")->capture_default_str();
  score_cmd->add_option("--out", a->out, "scores CSV (prediction: 1 above the model's decision threshold)")->required();

  auto* eval_cmd = mvg->add_subcommand("eval", "MVTec AD: fit on train/good, image AUROC on the test split, per category");
  add_common(eval_cmd);
  eval_cmd->add_option("--mvtec", a->mvtec, "MVTec AD root")->required();
  eval_cmd->add_option("--category", a->category, "one category");
  eval_cmd->add_flag("--all", a->all, "every category under the root, with mean and SEM");
  eval_cmd->add_option("--backbone", a->backbone, "the backbone")->required();
  add_pipeline_options(eval_cmd, *a, true);
  add_max_pixels_option(eval_cmd, *a);
  eval_cmd->add_option("--pca", a->pca, "PCA variance threshold");
  eval_cmd->add_option("--npca", a->npca, "NPCA variance threshold");
  eval_cmd->add_flag("--f32-cutoff", a->f32_cutoff, "pinvh with float32's cut-off");
  add_report_option(eval_cmd, a->report);
  return {mvg, [a, fit_cmd, score_cmd, eval_cmd, &common] {
            with_image_memory_message([&] { run_mvg(*a, fit_cmd, score_cmd, eval_cmd, common); });
          },
          // images: each rank extracts its share (a features CSV is read whole by one process)
          [a, fit_cmd, score_cmd] { return (*fit_cmd || *score_cmd) && a->features.empty(); }};
}

}  // namespace normad::cli
