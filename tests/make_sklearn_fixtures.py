#!/usr/bin/python3
# scikit-learn reference values for tests/test_metrics.cpp (OUTDIR/metrics.safetensors) and
# tests/test_gaussian_ad.cpp (OUTDIR/gaussian_ad.safetensors).
# Math: roc_auc_score, average_precision_score, max F1 over precision_recall_curve and NumPy's
# percentile, on random cases with many ties (scores on a coarse grid) and sizes 2..300;
# LedoitWolf (location, covariance, shrinkage, precision, Mahalanobis) for n < p, n = p, n > p and
# p = 1; PCA / NPCA as the official Gaussian-AD code selects components (gaussian_ad.md §7), then
# LedoitWolf in the reduced space; scipy's chi2.ppf for the χ² thresholds (§8).
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
    print("make_sklearn_fixtures: python3-sklearn not available, metrics parity test are skipped")
    # 77: ctest reports this setup test as skipped (SKIP_RETURN_CODE); under CI=true it fails.
    sys.exit(1 if os.environ.get("CI") == "true" else 77)


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
    gaussian_ad(out)


def gaussian_ad(out):
    """Ledoit-Wolf, PCA/NPCA and chi2 references. Inputs are float32 values fitted in float64."""
    from scipy.special import erf
    from scipy.stats import chi2
    from sklearn.covariance import LedoitWolf
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    fx = {}
    # (n, p, offset, correlated): n > p, n < p, n = p, p = 1, large offset, strong correlation.
    cases = [(50, 10, 0.0, False), (20, 40, 3.0, True), (64, 64, 0.0, True), (30, 1, 2.0, False),
             (200, 30, 100.0, True), (7, 3, 0.5, False)]
    for i, (n, p, offset, corr) in enumerate(cases):
        mix = rng.normal(size=(p, p)) if corr else np.eye(p)
        x = (rng.normal(size=(n, p)) @ mix * rng.uniform(0.5, 2.0, size=p) + offset).astype(np.float32)
        xt = (rng.normal(size=(9, p)) @ mix * 1.5 + offset).astype(np.float32)
        lw = LedoitWolf().fit(x.astype(np.float64))
        fx[f"lw{i}.x"], fx[f"lw{i}.xt"] = x, xt
        fx[f"lw{i}.mean"] = lw.location_
        fx[f"lw{i}.cov"] = lw.covariance_
        fx[f"lw{i}.precision"] = lw.precision_
        fx[f"lw{i}.shrinkage"] = np.array([lw.shrinkage_])
        fx[f"lw{i}.dist"] = np.sqrt(lw.mahalanobis(xt.astype(np.float64)))
    fx["lw_cases"] = np.array([len(cases)], dtype=np.float32)
    # PCA / NPCA: official selection rule, then LedoitWolf on the projected training rows.
    pcases = [(200, 30, "pca", 0.9), (200, 30, "npca", 0.9), (200, 30, "npca", 0.99),
              (200, 30, "pca", 0.5), (120, 12, "npca", 0.999), (120, 12, "pca", 0.999)]
    data = {}
    for i, (n, p, kind, t) in enumerate(pcases):
        if (n, p) not in data:
            mix = rng.normal(size=(p, p)) * np.geomspace(1, 0.01, p)[:, None]
            x = (rng.normal(size=(n, p)) @ mix + 1.0).astype(np.float32)
            xt = (rng.normal(size=(9, p)) @ mix * 1.3 + 1.0).astype(np.float32)
            data[(n, p)] = (x, xt)
        x, xt = data[(n, p)]
        pca = PCA(n_components=None).fit(x.astype(np.float64))
        c = int(np.argmax(np.cumsum(pca.explained_variance_ratio_) > t))
        comps = pca.components_[: c + 1] if kind == "pca" else pca.components_[max(c - 1, 0):]
        g = (x.astype(np.float64) - pca.mean_) @ comps.T
        gt = (xt.astype(np.float64) - pca.mean_) @ comps.T
        lw = LedoitWolf().fit(g)
        fx[f"pca{i}.x"], fx[f"pca{i}.xt"] = x, xt
        fx[f"pca{i}.kind"] = np.array([1.0 if kind == "npca" else 0.0, t])
        fx[f"pca{i}.k"] = np.array([comps.shape[0]], dtype=np.float64)
        fx[f"pca{i}.shrinkage"] = np.array([lw.shrinkage_])
        fx[f"pca{i}.dist"] = np.sqrt(lw.mahalanobis(gt))
    fx["pca_cases"] = np.array([len(pcases)], dtype=np.float32)
    # chi2 quantiles: d in {1, 48, 448, 1792}, coverage erf(n / sqrt 2), n = 1..8, and p = 0.99.
    dofs = [1, 48, 448, 1792]
    covs = [erf(k / np.sqrt(2)) for k in range(1, 9)] + [0.99]
    fx["chi2.dof"] = np.array(dofs, dtype=np.float64)
    fx["chi2.p"] = np.array(covs, dtype=np.float64)
    fx["chi2.threshold"] = np.sqrt(np.array([[chi2.ppf(q, d) for q in covs] for d in dofs]))
    save(os.path.join(out, "gaussian_ad.safetensors"), fx)
    print(f"make_sklearn_fixtures: {len(cases)} Ledoit-Wolf, {len(pcases)} PCA cases written to {out}")


if __name__ == "__main__":
    main()
