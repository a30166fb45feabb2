#!/usr/bin/python3
# Independent Python reference for tests/test_pixel_metrics.cpp (OUTDIR/pixel_metrics.safetensors), written
# from specs/pixel_metrics.md and acr.md §11.4 steps 2-3.
# Math: per case, N anomaly maps A (float32, scored in float64) and masks M (defect = M > 0).
#   Pixel AUROC / AP / F1-max over all N·H·W pooled pixels: scikit-learn's roc_auc_score,
#   average_precision_score and max 2PR/(P+R) over precision_recall_curve (points with P+R = 0 ignored).
#   Image level: score = max of the map, label = mask has a defect pixel; same three metrics.
#   AUPRO (pixel_metrics.md "PRO and AUPRO" 1-5): 8-connected components (K over all masks), ok pixels =
#   outside all of them (O); scores sorted decreasing, one (FPR, PRO) point after each distinct value, with
#   PRO = mean over regions of the fraction of the region at or above it; (0,0) prepended, (1,1) appended,
#   clipped at 1; trapezoid rule up to FPR = 0.3, the last segment cut there by linear interpolation; / 0.3.
#   An undefined metric (one class only, no region, no ok pixel) is NaN. regions_8conn / regions_4conn:
#   scipy.ndimage.label with np.ones((3, 3)) / the default cross, summed over the N masks.
#   c{i}.ref = [pixel_auroc, pixel_ap, pixel_f1max, aupro, image_auroc, image_ap, image_f1max, reg8, reg4].
# Map fixtures: up{j}.in/out = torch bilinear interpolate, align_corners=False (float32);
#   gauss{j}.in/out = scipy.ndimage.gaussian_filter(float64, sigma=4, mode='reflect', truncate=4.0).
# Run as `/usr/bin/python3 tests/make_pixel_fixtures.py OUTDIR`; without numpy/scipy/sklearn/torch it prints
# a message and exits 77 (the test skips; 1 under CI=true).
import os
import sys

try:
    import numpy as np
    import torch
    from scipy import ndimage
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
except ImportError as e:
    print(f"make_pixel_fixtures: {e.name} not available, pixel metrics parity test is skipped")
    # 77: ctest reports this setup test as skipped (SKIP_RETURN_CODE); under CI=true it fails.
    sys.exit(1 if os.environ.get("CI") == "true" else 77)


# The safetensors writer the other fixture scripts use (F32 maps and masks, F64 references).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_sklearn_fixtures import save  # noqa: E402


def curve_metrics(y, s):
    """AUROC, AP, F1-max of scores s (float64) against labels y; NaN unless both classes are present."""
    if y.all() or not y.any():
        return [np.nan] * 3
    p, r, _ = precision_recall_curve(y, s)
    ok = p + r > 0
    f1 = 2 * p[ok] * r[ok] / (p[ok] + r[ok])
    return [roc_auc_score(y, s), average_precision_score(y, s), f1.max()]


def aupro(maps, masks, limit=0.3):
    labels = np.zeros(masks.shape, dtype=np.int64)
    k = 0
    for i, m in enumerate(masks):  # 8-connected components, numbered globally 1..K
        lab, n = ndimage.label(m > 0, structure=np.ones((3, 3)))
        labels[i] = np.where(lab > 0, lab + k, 0)
        k += n
    labels, s = labels.ravel(), maps.astype(np.float64).ravel()
    n_ok = int((labels == 0).sum())
    if k == 0 or n_ok == 0:
        return np.nan
    size = np.bincount(labels, minlength=k + 1)
    # Each region pixel weighs 1 / (K |C_k|) in PRO.
    w_pro = np.where(labels > 0, 1.0 / (k * size[labels]), 0.0)
    # Distinct scores in decreasing order; inv maps each pixel to its group (pixels sharing a value together).
    _, inv = np.unique(-s, return_inverse=True)
    fpr = np.cumsum(np.bincount(inv[labels == 0], minlength=inv.max() + 1)) / n_ok  # integer counts: 3/10 == 0.3
    pro = np.cumsum(np.bincount(inv, weights=w_pro))
    fpr = np.minimum(np.concatenate([[0.0], fpr, [1.0]]), 1.0)
    pro = np.minimum(np.concatenate([[0.0], pro, [1.0]]), 1.0)
    # Points with FPR <= limit (a run at exactly limit adds zero-width segments), then cut the next segment.
    j = int(np.searchsorted(fpr, limit, side="right"))  # fpr is non-decreasing; fpr[-1] = 1 > limit
    x, y = fpr[:j], pro[:j]
    if x[-1] < limit:
        t = (limit - x[-1]) / (fpr[j] - x[-1])
        x, y = np.append(x, limit), np.append(y, y[-1] + t * (pro[j] - y[-1]))
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / limit)


def reference(maps, masks):
    s = maps.astype(np.float64)
    pix = curve_metrics((masks > 0).ravel(), s.ravel())
    img = curve_metrics((masks > 0).reshape(len(masks), -1).any(1), s.reshape(len(s), -1).max(1))
    reg8 = sum(ndimage.label(m > 0, structure=np.ones((3, 3)))[1] for m in masks)
    reg4 = sum(ndimage.label(m > 0)[1] for m in masks)
    return np.array(pix + [aupro(maps, masks)] + img + [reg8, reg4], dtype=np.float64)


def blobs(rng, n, h, w, p_defect=0.5, max_blobs=3):
    """Masks with a few rectangles / discs per defective image; image 0 is always defective, image 1 good."""
    masks = np.zeros((n, h, w), dtype=np.float32)
    yy, xx = np.mgrid[:h, :w]
    for i in range(n):
        if i == 1 or (i > 1 and rng.random() > p_defect):
            continue
        for _ in range(int(rng.integers(1, max_blobs + 1))):
            cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
            r = rng.uniform(1, max(1.5, min(h, w) / 5))
            if rng.random() < 0.5:
                masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
            else:
                masks[i][max(cy - int(r), 0):cy + int(r) + 1, max(cx - int(r), 0):cx + int(r) + 2] = 1
    return masks


def scored(rng, masks, gain):
    """Noise plus gain on defect pixels (random per image), smoothed a little like a real map."""
    base = rng.normal(size=masks.shape) + gain * rng.uniform(0.3, 1.0, size=(len(masks), 1, 1)) * (masks > 0)
    return ndimage.gaussian_filter(base, sigma=(0, 0.7, 0.7)).astype(np.float32)


def cases(rng):
    out = []
    for _ in range(8):  # random blob masks, some good images
        n, h, w = int(rng.integers(2, 7)), int(rng.integers(8, 41)), int(rng.integers(8, 41))
        m = blobs(rng, n, h, w)
        out.append(("random blobs", scored(rng, m, rng.uniform(0.5, 2.0)), m))
    for levels in (4, 10):  # maps quantised to few levels: many ties
        m = blobs(rng, 4, 20, 24)
        a = scored(rng, m, 2.0)
        out.append((f"{levels} levels", np.round((a - a.min()) / np.ptp(a) * (levels - 1)).astype(np.float32), m))
    m = blobs(rng, 3, 16, 16)
    out.append(("all scores equal", np.full(m.shape, 0.25, np.float32), m))
    m = np.zeros((3, 24, 24), np.float32)
    m[2, 5:12, 8:15] = 1
    out.append(("single region", scored(rng, m, 1.5), m))
    m = np.zeros((2, 20, 20), np.float32)
    m[0, 1::4, 2::3] = 1  # isolated pixels (gaps >= 2 in y, >= 2 in x)
    m[0, 3::4, 1::5] = 1
    out.append(("many 1-px regions", scored(rng, m, 1.0), m))
    m = np.zeros((2, 12, 12), np.float32)
    m[0, 2:5, 2:5] = 1
    m[0, 5:8, 5:8] = 1  # touches the first square only at the corner (4,4)-(5,5)
    out.append(("diagonal touch", scored(rng, m, 1.0), m))
    m = blobs(rng, 4, 20, 20)
    a = scored(rng, m, 2.0)
    a[1] += 2.5  # image 1 is good (blobs keeps it empty) but scores high
    out.append(("good image high", a, m))
    m = blobs(rng, 3, 16, 20)
    a = rng.integers(0, 5, size=m.shape).astype(np.float32) + (m > 0) * rng.integers(0, 2, size=m.shape)
    out.append(("exact ties", a, m))
    m = blobs(rng, 4, 18, 18) * 255
    out.append(("masks 0/255", scored(rng, m, 2.0), m))
    m = np.zeros((3, 14, 14), np.float32)
    out.append(("all normal", scored(rng, m, 0.0), m))
    m = blobs(rng, 5, 24, 24)
    a = scored(rng, m, 0.0) + 8 * (m > 0)
    a[0, m[0] > 0] -= 8 * (rng.random(int((m[0] > 0).sum())) < 0.05)  # a few defect pixels stay low
    out.append(("near-perfect", a.astype(np.float32), m))
    m = blobs(rng, 3, 17, 40)
    out.append(("non-square 17x40", scored(rng, m, 2.0), m))
    m = blobs(rng, 3, 224, 224, p_defect=1.0, max_blobs=4)
    out.append(("large 224x224", scored(rng, m, 1.5), m))
    m = np.stack([blobs(rng, 1, 16, 16)[0] for _ in range(3)])
    out.append(("all images defective", scored(rng, m, 1.5), m))
    # FPR exactly 0.3 at several consecutive points: 10 ok pixels, 3 of them at score 9, then defect-only values.
    m = np.zeros((1, 4, 5), np.float32)
    m[0, 0:2, :] = 1  # one region of 10 pixels
    a = np.array([[9, 8, 7, 6, 5], [4, 3, 2, 1, 0], [9, 9, 9, 1, 1], [1, 0, 0, 0, 0]], np.float32)[None]
    out.append(("FPR run at 0.3", a, m))
    m = blobs(rng, 3, 12, 12)
    a = np.where(m > 0, rng.integers(1, 4, size=m.shape), 2).astype(np.float32)  # all ok pixels tied
    out.append(("FPR jumps past 0.3", a, m))
    m = np.zeros((2, 10, 10), np.float32)
    m[0] = 1  # image 0 is one region covering the whole image
    out.append(("whole-image region", scored(rng, m, 1.0), m))
    return out


def map_fixtures(rng, fx):
    for j, (shape, size) in enumerate([((2, 14, 14), (224, 224)), ((1, 5, 7), (13, 30))]):
        x = rng.normal(size=shape).astype(np.float32)
        y = torch.nn.functional.interpolate(torch.from_numpy(x)[:, None], size=size, mode="bilinear",
                                            align_corners=False)[:, 0]
        fx[f"up{j}.in"], fx[f"up{j}.out"] = x, y.numpy().astype(np.float32)
    for j, shape in enumerate([(224, 224), (40, 57), (10, 12)]):
        yy, xx = np.mgrid[:shape[0], :shape[1]]
        x = (rng.normal(size=shape) + 0.1 * yy - 0.05 * xx).astype(np.float32)  # a ramp tests the borders
        fx[f"gauss{j}.in"] = x
        fx[f"gauss{j}.out"] = ndimage.gaussian_filter(x.astype(np.float64), sigma=4, mode="reflect", truncate=4.0)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    fx = {}
    cs = cases(rng)
    for i, (name, maps, masks) in enumerate(cs):
        fx[f"c{i}.maps"], fx[f"c{i}.masks"] = maps.astype(np.float32), masks.astype(np.float32)
        fx[f"c{i}.ref"] = reference(maps.astype(np.float32), masks)
        if "-v" in sys.argv[2:]:
            print(f"c{i:<2} {name:22s} {list(maps.shape)!s:14s}",
                  " ".join(f"{v:8.5f}" if v % 1 or np.isnan(v) else f"{int(v):8d}" for v in fx[f"c{i}.ref"]))
    fx["n_cases"] = np.array([len(cs)], dtype=np.float32)
    map_fixtures(rng, fx)
    save(os.path.join(out, "pixel_metrics.safetensors"), fx)
    print(f"make_pixel_fixtures: {len(cs)} metric cases, 2 upsampling and 3 Gaussian fixtures written to {out}")


if __name__ == "__main__":
    main()
