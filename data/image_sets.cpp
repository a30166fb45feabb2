// normad image data sets: MVTec AD and Folder layouts (see data/image_sets.h).
// Math: none; sorted directory listings, labels 0 (normal) / 1 (anomalous), mask paths by stem.
// Tested by tests/test_images.cpp (generated trees: order, labels, names, masks, every error).
#include "data/image_sets.h"

#include <algorithm>
#include <filesystem>
#include <map>

namespace normad::data {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

void require_dir(const fs::path& dir, const std::string& what) {
  if (!fs::is_directory(dir)) throw Error(dir.string() + ": no such " + what + " directory");
}

// Sorted names of the subdirectories of `dir` (hidden ones skipped).
std::vector<std::string> list_dirs(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && !name.empty() && name[0] != '.') out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

bool is_image_file(const std::string& path) {
  const std::string ext = lower(fs::path(path).extension().string());
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

std::vector<std::string> list_images(const std::string& dir) {
  require_dir(dir, "image");
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() && !name.empty() && name[0] != '.' && is_image_file(name))
      out.push_back(name);
  }
  std::sort(out.begin(), out.end());  // bytewise, as Python's sorted(os.listdir(...))
  return out;
}

std::vector<ImageItem> mvtec_items(const std::string& root, const std::string& category,
                                   const std::string& split) {
  if (split != "train" && split != "test")
    throw Error("mvtec: split '" + split + "' unknown (train or test)");
  require_dir(root, "MVTec AD root");
  const fs::path cat_dir = fs::path(root) / category;
  require_dir(cat_dir, "MVTec AD category");
  const fs::path split_dir = cat_dir / split;
  require_dir(split_dir, "MVTec AD " + split);
  const fs::path gt_dir = cat_dir / "ground_truth";
  const bool has_gt = fs::is_directory(gt_dir);

  // train: the good images only (acr.md §11.1, gaussian_ad.md §9); test: every defect folder.
  std::vector<std::string> defects;
  if (split == "train") {
    require_dir(split_dir / "good", "MVTec AD train/good");
    defects = {"good"};
  } else {
    defects = list_dirs(split_dir);
  }

  std::vector<ImageItem> items;
  for (const std::string& defect : defects) {
    for (const std::string& file : list_images((split_dir / defect).string())) {
      ImageItem it;
      it.path = (split_dir / defect / file).string();
      it.name = defect + "/" + file;
      it.defect = defect;
      it.label = defect == "good" ? 0 : 1;
      if (it.label == 1 && has_gt) {
        // ground_truth/<defect>/<stem>_mask.png; with a ground_truth directory every mask must exist.
        const fs::path m = gt_dir / defect / (fs::path(file).stem().string() + "_mask.png");
        if (!fs::is_regular_file(m))
          throw Error(m.string() + ": missing ground-truth mask for " + it.path);
        it.mask = m.string();
      }
      items.push_back(std::move(it));
    }
  }
  if (items.empty())
    throw Error((split == "train" ? split_dir / "good" : split_dir).string() +
                ": no images (.png .jpg .jpeg .bmp)");
  return items;
}

std::vector<std::string> mvtec_categories(const std::string& root) {
  require_dir(root, "MVTec AD root");
  std::vector<std::string> out;
  for (const std::string& d : list_dirs(root))
    if (fs::is_directory(fs::path(root) / d / "train" / "good")) out.push_back(d);
  return out;
}

std::vector<ImageItem> folder_items(const std::string& normal_dir, const std::string& abnormal_dir,
                                    const std::string& mask_dir) {
  // Mask files by key: their stem, and the stem without a "_mask" suffix.
  std::map<std::string, std::vector<std::string>> masks;
  if (!mask_dir.empty()) {
    for (const std::string& f : list_images(mask_dir)) {
      const std::string stem = fs::path(f).stem().string();
      const std::string path = (fs::path(mask_dir) / f).string();
      masks[stem].push_back(path);
      const std::string suffix = "_mask";
      if (stem.size() > suffix.size() && stem.ends_with(suffix))
        masks[stem.substr(0, stem.size() - suffix.size())].push_back(path);
    }
  }

  std::vector<ImageItem> items;
  auto add = [&](const std::string& dir, int label) {
    const std::vector<std::string> files = list_images(dir);
    if (files.empty()) throw Error(dir + ": no images (.png .jpg .jpeg .bmp)");
    // the directory's own name ("good", "defect", ...) names the group
    fs::path norm = fs::path(dir).lexically_normal();
    if (norm.filename().empty()) norm = norm.parent_path();  // "a/good/" -> "a/good"
    const std::string group = norm.filename().string();
    for (const std::string& file : files) {
      ImageItem it;
      it.path = (fs::path(dir) / file).string();
      it.defect = group;
      it.name = group + "/" + file;
      it.label = label;
      if (label == 1 && !mask_dir.empty()) {
        const std::string stem = fs::path(file).stem().string();
        auto found = masks.find(stem);
        if (found == masks.end())
          throw Error((fs::path(mask_dir) / (stem + ".png")).string() + " (or " + stem +
                      "_mask.*): missing mask for " + it.path);
        if (found->second.size() > 1)
          throw Error(mask_dir + ": ambiguous masks for " + it.path + ": " + found->second[0] +
                      " and " + found->second[1]);
        it.mask = found->second[0];
      }
      items.push_back(std::move(it));
    }
  };
  add(normal_dir, 0);
  if (!abnormal_dir.empty()) add(abnormal_dir, 1);
  return items;
}

std::vector<int> item_labels(const std::vector<ImageItem>& items) {
  std::vector<int> out;
  out.reserve(items.size());
  for (const auto& it : items) out.push_back(it.label);
  return out;
}

std::vector<std::string> item_paths(const std::vector<ImageItem>& items) {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const auto& it : items) out.push_back(it.path);
  return out;
}

Tensor load_item_images(const std::vector<ImageItem>& items, const ImagePrep& prep) {
  return load_batch(item_paths(items), prep);
}

Tensor load_item_masks(const std::vector<ImageItem>& items, const ImagePrep& prep) {
  prep.validate();
  if (items.empty()) throw Error("load_item_masks: no items");
  std::vector<Tensor> masks(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].mask.empty()) {
      masks[i] = load_mask(items[i].mask, prep);
    } else {
      auto [h, w] = image_size_hw(items[i].path);
      auto [oh, ow] = prep_output_size(h, w, prep);
      masks[i] = Tensor::zeros({oh, ow});
    }
    if (masks[i].shape() != masks[0].shape())
      throw Error((items[i].mask.empty() ? items[i].path : items[i].mask) + ": mask preprocessed to " +
                  shape_str(masks[i].shape()) + " but the first to " + shape_str(masks[0].shape()));
  }
  const int64_t per = masks[0].numel();
  Tensor out = Tensor::empty({int64_t(items.size()), masks[0].size(0), masks[0].size(1)});
  for (size_t i = 0; i < items.size(); ++i)
    std::copy_n(masks[i].data(), per, out.data() + int64_t(i) * per);
  return out;
}

}  // namespace normad::data
