// normad thread-count control through oneTBB's global_control (see tensor/parallel.h).
#include "tensor/parallel.h"

#include <memory>

#include <tbb/global_control.h>
#include <tbb/info.h>

namespace normad {

namespace {
std::unique_ptr<tbb::global_control> g_control;
}

void set_num_threads(int n) {
  g_control.reset();
  if (n > 0)
    g_control = std::make_unique<tbb::global_control>(
        tbb::global_control::max_allowed_parallelism, static_cast<size_t>(n));
}

int num_threads() {
  return static_cast<int>(
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

}  // namespace normad
