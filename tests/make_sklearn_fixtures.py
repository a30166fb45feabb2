#!/usr/bin/python3
# scikit-learn reference values for tests/test_metrics.cpp, written to OUTDIR/metrics.safetensors.
# Math: roc_auc_score, average_precision_score, max F1 over precision_recall_curve and NumPy's
# percentile, on random cases with many ties (scores on a coarse grid) and sizes 2..300.
# Run by ctest as `/usr/bin/python3 tests/make_sklearn_fixtures.py OUTDIR`; without python3-sklearn
# it prints a message and exits 0 (the metrics parity test then skips).
import json
import os
import struct
import sys

try:
    import numpy as np
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
except ImportError:
    print("make_sklearn_fixtures: python3-sklearn not available, metrics parity test will skip")
    sys.exit(0)


def save(path, tensors):
    """safetensors with F32 (scores, labels) and F64 (reference values) tensors."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dtype = "F64" if a.dtype == np.float64 else "F32"
        raw = a.astype("<f8" if dtype == "F64" else "<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    js = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + b"".join(blobs))
    os.replace(path + ".tmp", path)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    fx = {}
    n_cases = 40
    for i in range(n_cases):
        n = int(rng.integers(2, 300))
        y = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(np.float32)
        y[0], y[-1] = 1, 0  # both classes present
        levels = int(rng.choice([3, 10, 1000]))  # few levels: many ties
        s = (np.round(rng.random(n) * levels) / levels + 0.3 * y * rng.random()).astype(np.float32)
        s64 = s.astype(np.float64)
        p, r, _ = precision_recall_curve(y, s64)
        f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0.0)
        fx[f"c{i}.s"], fx[f"c{i}.y"] = s, y
        fx[f"c{i}.ref"] = np.array([roc_auc_score(y, s64), average_precision_score(y, s64), f1.max(),
                                    np.percentile(s64, 90.0), np.percentile(s64, 37.5)], dtype=np.float64)
    fx["n_cases"] = np.array([n_cases], dtype=np.float32)
    save(os.path.join(out, "metrics.safetensors"), fx)
    print(f"make_sklearn_fixtures: {n_cases} cases written to {out}")


if __name__ == "__main__":
    main()
