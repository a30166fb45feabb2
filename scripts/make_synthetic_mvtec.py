#!/usr/bin/python3
# Writes a small synthetic data set in the MVTec AD directory layout: OUT/<class>/train/good,
# OUT/<class>/test/good, OUT/<class>/test/<defect> and OUT/<class>/ground_truth/<defect>/NNN_mask.png.
# Each class is a procedural texture family (stripes, checker, dots, weave, grain, waves): every image
# draws its own phase, shift, and small frequency and colour jitter, plus faint pixel noise, so the
# images differ but share the class's look (like MVTec's carpet/grid/tile). Two defect types per
# class, alternating over the defective test images: "blob", an irregular filled patch (a circle with
# a random wavy radius), and "scratch", a slightly bent line a few pixels thick. Both are painted in
# a saturated colour chosen far from the class's colours, cover about 1-4% of the image, and lie
# fully inside the central 224/256 crop (the pipeline resizes to 256 and centre-crops 224).
# The mask is exactly the set of pixels the defect changed (0 or 255). Defects are meant to be
# salient enough for frozen features from a randomly initialised CNN. numpy + PIL only;
# deterministic from --seed. Used by the end-to-end test tests/test_acr_mvtec.cpp and by
# docs/acr_mvtec.md. Usage:
#   /usr/bin/python3 scripts/make_synthetic_mvtec.py OUT [--classes 4] [--train 10] [--test-good 4]
#       [--test-defect 6] [--size 256] [--seed 0]
import argparse
import os
import sys

try:
    import numpy as np
    from PIL import Image
except ImportError:
    print("make_synthetic_mvtec: needs python3-numpy and python3-pil")
    # 77: ctest reports the setup test as skipped (SKIP_RETURN_CODE); under CI=true it fails.
    sys.exit(1 if os.environ.get("CI") == "true" else 77)

# name -> (two base colours); the texture blends between them.
CLASSES = {
    "stripes": ((0.30, 0.32, 0.45), (0.62, 0.62, 0.72)),
    "checker": ((0.25, 0.25, 0.25), (0.70, 0.70, 0.68)),
    "dots": ((0.58, 0.48, 0.36), (0.32, 0.24, 0.18)),
    "weave": ((0.52, 0.56, 0.40), (0.28, 0.33, 0.22)),
    "grain": ((0.62, 0.46, 0.30), (0.42, 0.28, 0.18)),
    "waves": ((0.28, 0.44, 0.50), (0.52, 0.66, 0.70)),
}
DEFECTS = ("blob", "scratch")
PALETTE = np.array([(0.95, 0.05, 0.05), (0.05, 0.90, 0.10), (0.10, 0.15, 0.95), (0.98, 0.95, 0.05),
                    (0.95, 0.05, 0.90), (0.05, 0.95, 0.95), (0.02, 0.02, 0.02), (1.0, 1.0, 1.0)])


def texture(name, s, rng):
    y, x = np.mgrid[0:s, 0:s].astype(np.float32) / s           # coordinates in [0, 1)
    f = rng.uniform(0.9, 1.1)                                   # frequency jitter
    ph, ox, oy = rng.uniform(0, 2 * np.pi), rng.uniform(0, 1), rng.uniform(0, 1)
    if name == "stripes":
        th = np.deg2rad(35 + rng.uniform(-5, 5))
        t = 0.5 + 0.5 * np.sin(2 * np.pi * 12 * f * (x * np.cos(th) + y * np.sin(th)) + ph)
    elif name == "checker":
        c = 8 * f
        t = ((np.floor((x + ox) * c) + np.floor((y + oy) * c)) % 2).astype(np.float32)
    elif name == "dots":
        c = 10 * f
        dx, dy = (x + ox) * c % 1 - 0.5, (y + oy) * c % 1 - 0.5
        t = np.clip((0.32 - np.hypot(dx, dy)) * 20, 0, 1)
    elif name == "weave":
        c = 6 * f
        u, v = (x + ox) * c, (y + oy) * c
        horiz = (np.floor(u) + np.floor(v)) % 2 == 0
        t = np.where(horiz, np.sin(np.pi * 3 * v) ** 2, np.sin(np.pi * 3 * u) ** 2)
    elif name == "grain":
        small = rng.uniform(0, 1, (4, 16))                      # smooth noise, stretched along x
        noise = np.asarray(Image.fromarray(small.astype(np.float32), "F").resize((s, s), Image.BICUBIC))
        t = 0.5 + 0.5 * np.sin(2 * np.pi * 9 * f * (y + 0.12 * noise) + ph)
    elif name == "waves":
        t = 0.5 + 0.5 * np.sin(2 * np.pi * 7 * f * y + 1.5 * np.sin(2 * np.pi * 3 * f * x + ph) + ph)
    shift = rng.uniform(-0.04, 0.04) + rng.uniform(-0.015, 0.015, 3)   # brightness, then a slight tint
    c0, c1 = (np.clip(np.array(c) + shift, 0, 1) for c in CLASSES[name])
    img = c0 + t[..., None] * (c1 - c0) + 0.01 * rng.standard_normal((s, s, 3), np.float32)
    return np.clip(img, 0, 1)


def defect_colour(name, k, rng):
    """The k-th farthest palette colour from the class's colours, slightly jittered."""
    base = np.array(CLASSES[name])
    dist = np.min(np.linalg.norm(PALETTE[:, None, :] - base[None], axis=2), axis=1)
    return np.clip(PALETTE[np.argsort(-dist, kind="stable")[k]] + rng.uniform(-0.04, 0.04, 3), 0, 1)


def defect_mask(kind, s, rng):
    """Boolean mask of one defect, placed fully inside the central 224/256 crop."""
    if kind == "blob":                                          # circle with a wavy radius
        r0 = np.sqrt(rng.uniform(0.015, 0.035) * s * s / np.pi)
        ks = np.arange(2, 6)
        amp, phs = rng.uniform(0, 0.18, ks.size), rng.uniform(0, 2 * np.pi, ks.size)
        pts = None
    else:                                                       # bent thick line
        w = max(3.0, s * rng.uniform(0.016, 0.027))
        length = min(0.6 * s, rng.uniform(0.01, 0.025) * s * s / w)
        th = rng.uniform(0, np.pi)
        t = np.linspace(-0.5, 0.5, 17)[:, None]
        bend = rng.uniform(-0.15, 0.15) * length * (1 - 4 * t ** 2)
        pts = t * length * np.array([np.cos(th), np.sin(th)]) + bend * np.array([-np.sin(th), np.cos(th)])
    ext = np.full(2, r0 * 1.72) if pts is None else np.abs(pts).max(axis=0) + w / 2   # half extent (x, y)
    margin = s * 16 / 256 + 3                                   # the crop keeps [s/16, 15s/16)
    cx, cy = (rng.uniform(margin + e, s - margin - e) for e in ext)
    x0, y0, x1, y1 = (int(v) for v in (cx - ext[0] - 2, cy - ext[1] - 2, cx + ext[0] + 3, cy + ext[1] + 3))
    y, x = np.mgrid[y0:y1, x0:x1].astype(np.float64)            # only the window around the defect
    mask = np.zeros((s, s), bool)
    if pts is None:
        ang = np.arctan2(y - cy, x - cx)
        r = r0 * (1 + (amp[:, None, None] * np.cos(ks[:, None, None] * ang + phs[:, None, None])).sum(0))
        mask[y0:y1, x0:x1] = np.hypot(x - cx, y - cy) <= r
        return mask
    p = pts + (cx, cy)
    a, b = p[:-1, None, None, :], p[1:, None, None, :]          # segments
    q = np.stack([x, y], -1)[None]
    ab = b - a
    h = np.clip(((q - a) * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)[..., None]
    mask[y0:y1, x0:x1] = np.linalg.norm(q - a - h * ab, axis=-1).min(0) <= w / 2
    return mask


def save(arr, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path, compress_level=1)     # noisy pixels barely compress; favour speed


def to8(img):
    return np.round(img * 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description="Synthetic MVTec-AD-layout texture data set with pasted defects.")
    ap.add_argument("out")
    ap.add_argument("--classes", type=int, default=4, choices=range(1, len(CLASSES) + 1))
    ap.add_argument("--train", type=int, default=10)
    ap.add_argument("--test-good", type=int, default=4)
    ap.add_argument("--test-defect", type=int, default=6)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if min(a.train, a.test_good, a.test_defect) < 0 or a.size < 32 or a.seed < 0:
        ap.error("counts must be >= 0, --size >= 32, --seed >= 0")
    if os.path.exists(a.out) and (not os.path.isdir(a.out) or os.listdir(a.out)):
        what = "non-empty directory" if os.path.isdir(a.out) else "existing non-directory"
        print(f"make_synthetic_mvtec: refusing to write into {what} {a.out}", file=sys.stderr)
        sys.exit(2)
    names = list(CLASSES)[:a.classes]
    for ci, name in enumerate(names):
        root = os.path.join(a.out, name)
        for split, n, code in (("train", a.train, 0), ("test", a.test_good, 1)):
            for i in range(n):
                rng = np.random.default_rng([a.seed, ci, code, i])
                save(to8(texture(name, a.size, rng)), os.path.join(root, split, "good", f"{i:03d}.png"))
        for i in range(a.test_defect):
            kind, k = DEFECTS[i % 2], i // 2                    # alternate: blob, scratch, blob, ...
            rng = np.random.default_rng([a.seed, ci, 2, i])
            clean = to8(texture(name, a.size, rng))
            mask = defect_mask(kind, a.size, rng)
            col = defect_colour(name, i % 2, rng)
            img = clean.astype(np.float64) / 255
            img[mask] = np.clip(col + rng.normal(0, 0.015, (int(mask.sum()), 3)), 0, 1)
            img = to8(img)
            assert np.array_equal((img != clean).any(-1), mask), "mask must be exactly the changed pixels"
            save(img, os.path.join(root, "test", kind, f"{k:03d}.png"))
            save(mask.astype(np.uint8) * 255, os.path.join(root, "ground_truth", kind, f"{k:03d}_mask.png"))
    nb, ns = (a.test_defect + 1) // 2, a.test_defect // 2
    print(f"make_synthetic_mvtec: {len(names)} classes ({', '.join(names)}), each {a.train} train/good, "
          f"{a.test_good} test/good, {nb} test/blob + {ns} test/scratch with masks, {a.size}px, seed {a.seed}, in {a.out}")


if __name__ == "__main__":
    main()
