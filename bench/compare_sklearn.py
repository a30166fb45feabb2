#!/usr/bin/env python3
# Gaussian-AD against scikit-learn on the same T cores: LedoitWolf().fit on n = 5000 rows of
# d = 1792 features (mean, shrunk covariance, precision by pinvh) and the Mahalanobis distances of
# 10 000 rows (sqrt of LedoitWolf.mahalanobis), beside normad's mvg_fit / mvg_score benchmarks
# (build/normad_bench, bench/bench_gaussian_ad.cpp). Prints one line per workload:
#   <name> normad_ms=<x> sklearn_ms=<y> speedup=<y/x>        (speedup > 1: normad is faster)
# Threads: both run under `taskset -c 0..T-1`; scikit-learn (NumPy/SciPy on OpenBLAS) is run with
# OPENBLAS_NUM_THREADS=1 and =T, and with float32 and float64 input, keeping the fastest set-up.
# Usage: python3 bench/compare_sklearn.py [--threads T] [--bench build/normad_bench] [--fit-only]
import sys

from bench_common import arg_parser, run_normad, run_python


SKLEARN_SCRIPT = r'''
import sys, time
import numpy as np
from sklearn.covariance import LedoitWolf
dtype = {"f32": np.float32, "f64": np.float64}[sys.argv[1]]
fit_only = len(sys.argv) > 2 and sys.argv[2] == "fit"
rng = np.random.default_rng(1)
d = 1792
a = rng.standard_normal((d, d))
def features(n):
    return (0.05 * (rng.standard_normal((n, d)) @ a) + 1.0).astype(dtype)
x, xt = features(5000), features(10000)

def report(name, f, reps=3, warm=True):
    if warm:
        f()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter(); f(); best = min(best, time.perf_counter() - t0)
    print(name, 1000 * best)

report("mvg_fit/n5000_d1792", lambda: LedoitWolf().fit(x))
if fit_only:
    sys.exit(0)
lw = LedoitWolf().fit(x)
report("mvg_score/n10000_d1792", lambda: np.sqrt(lw.mahalanobis(xt)), reps=1, warm=False)  # ~15 s a call
'''


def run_sklearn(t, fit_only):
    best = {}
    for dtype in ("f32", "f64"):
        for blas, res in run_python(t, SKLEARN_SCRIPT, [dtype, "fit" if fit_only else "all"]):
            for name, ms in res.items():
                print(f"  sklearn {name} OpenBLAS threads[,core] {blas} {dtype}: {ms:.1f} ms", file=sys.stderr)
                if ms < best.get(name, (float("inf"),))[0]:
                    best[name] = (ms, f"OpenBLAS threads[,core] {blas} {dtype}")
    return best


def main():
    ap = arg_parser()
    ap.add_argument("--fit-only", action="store_true",
                    help="only the fit (scikit-learn's Mahalanobis scoring takes ~20 s a call)")
    a = ap.parse_args()
    n = run_normad(a.threads, a.bench, "^mvg_fit" if a.fit_only else "^mvg_")
    s = run_sklearn(a.threads, a.fit_only)
    for name in sorted(n):
        ms, setup = s[name]
        print(f"{name} normad_ms={n[name]:.1f} sklearn_ms={ms:.1f} speedup={ms / n[name]:.3f} "
              f"(threads {a.threads}; sklearn fastest with {setup})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
