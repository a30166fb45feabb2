// normad's public header for programs that embed it: the detector API (fit, decision_function,
// predict, threshold, infer_threshold, save, Detector::load) over tables and images.
//   #include <normad/normad.h>
//   auto det = normad::Detector::load("model.safetensors");
//   std::vector<int> flagged = det->predict(normad::read_table("new.csv"));
// With CMake: find_package(normad CONFIG REQUIRED) and target_link_libraries(app normad::normad);
// without: pkg-config --cflags --libs normad. examples/embed/ is a whole program.
// PyOD / normad:  det.fit(X)                  TableDetector::fit(table_or_tensor, options)
//                 det.decision_function(X)    det.decision_function(X)   (higher = more anomalous)
//                 det.predict(X)              det.predict(X)             (1 = above the threshold)
//                 det.threshold_              det.threshold()
//                 pickle / joblib             det.save(path), Detector::load(path)
#pragma once

#include "detect/detector.h"
#include "detect/image_detector.h"
#include "detect/table_detector.h"
