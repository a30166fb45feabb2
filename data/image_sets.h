// normad image data sets on disk: the MVTec AD layout and a generic Folder layout (anomalib's
// Folder: one directory of normal images, optionally one of anomalous images and one of masks).
// Order: MVTec defect folders sorted by name ("good" among them), files sorted by name inside each
// (gaussian_ad.md §9, acr.md §7.5); Folder: normals then anomalies, each sorted by file name.
// Label 0 normal, 1 anomalous (eval/metrics.h convention). Names sort bytewise, as Python's sorted().
// Tested by tests/test_images.cpp on small trees of generated images (order, labels, masks, errors).
//
// MVTec AD layout:
//   ROOT/<category>/train/good/000.png ...
//   ROOT/<category>/test/<defect>/000.png ...            (<defect> is "good" or a defect type)
//   ROOT/<category>/ground_truth/<defect>/000_mask.png   (none for "good")
#pragma once

#include <array>
#include <string>
#include <vector>

#include "data/image.h"

namespace normad::data {

struct ImageItem {
  std::string path;    // the image file
  std::string name;    // "<defect>/<file>", e.g. "good/000.png" or "crack/003.png"
  std::string defect;  // the folder: "good", "crack", ... (Folder layout: the directory's name)
  std::string mask;    // the ground-truth mask file; "" when none
  int label = 0;       // 0 normal, 1 anomalous
};

// The 15 official MVTec AD categories, in the order of the papers' tables.
inline const std::array<std::string, 15> kMvtecCategories = {
    "bottle", "cable",     "capsule", "carpet", "grid",       "hazelnut", "leather", "metal_nut",
    "pill",   "screw",     "tile",    "toothbrush", "transistor", "wood", "zipper"};

// True for .png .jpg .jpeg .bmp (any letter case).
bool is_image_file(const std::string& path);

// The image files in `dir` (names only, sorted; hidden files skipped). A missing directory throws.
std::vector<std::string> list_images(const std::string& dir);

// Items of one category and split ("train": train/good only; "test": every test/<defect>).
// Masks: test images outside "good" get ground_truth/<defect>/<stem>_mask.png; when the category
// has no ground_truth directory at all, masks stay "". Errors name the path: a missing root,
// category or split directory, an empty train/good or test split, an unknown split, and a missing
// mask file when ground_truth exists.
std::vector<ImageItem> mvtec_items(const std::string& root,      // ROOT above
                                   const std::string& category,  // e.g. "bottle"
                                   const std::string& split);    // "train" or "test"

// The category directories under `root` that have train/good (sorted). A missing root throws.
std::vector<std::string> mvtec_categories(const std::string& root);

// Folder layout: images of `normal_dir` (label 0), then of `abnormal_dir` (label 1; "" for none),
// each sorted by name. With `mask_dir` ("" for none), each abnormal image gets the mask file whose
// stem equals the image's stem, or the image's stem + "_mask" (any image extension); a missing
// or ambiguous mask throws naming it. Normal images have no mask. Empty or missing directories throw.
std::vector<ImageItem> folder_items(const std::string& normal_dir,    // normal images
                                    const std::string& abnormal_dir,  // anomalous images or ""
                                    const std::string& mask_dir);     // masks of anomalies or ""

// Labels of `items`, in order.
std::vector<int> item_labels(const std::vector<ImageItem>& items);
// Their image files, in order.
std::vector<std::string> item_paths(const std::vector<ImageItem>& items);
// The images of `items` through `prep` -> [N, 3, Ho, Wo] (load_batch).
Tensor load_item_images(const std::vector<ImageItem>& items, const ImagePrep& prep);
// Their masks -> [N, Ho, Wo] in {0, 1} (load_mask); an item without a mask gives zeros of the size
// its image would have (read from the image header).
Tensor load_item_masks(const std::vector<ImageItem>& items, const ImagePrep& prep);

}  // namespace normad::data
