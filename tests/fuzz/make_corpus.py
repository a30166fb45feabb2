#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/), small valid inputs of each
format, so libFuzzer starts from files that reach deep into each parser.

Usage: /usr/bin/python3 tests/fuzz/make_corpus.py NORMAD_BINARY [OUT_DIR]
Needs numpy, scipy (savemat) and PIL (Debian: python3-scipy, python3-pil). The model files come from
the normad binary itself, trained for a few epochs on a small table. The committed corpora were made
with this script (2026-12-02); rerun it after a format changes.
"""
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import scipy.io
from PIL import Image


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def csv_seeds(out):
    t = "fuzz_csv"
    write(out, t, "numeric.csv", "a,b,label\n1,2.5,n\n-3e2,0.125,a\n4,5,n\n")
    write(out, t, "quoted.csv", 'name,"x, y",label\n"a ""b""",1,n\n"multi\nline",2,a\n')
    write(out, t, "bom_crlf.csv", "\ufeffcolor,v,label\r\nred,1,n\r\nblue,2,a\r\n")
    write(out, t, "onehot.csv", "kind,v,w,label\ncat,1,2,0\ndog,3,4,1\ncat,5,6,0\n")
    write(out, t, "header_only.csv", "a,b\n")
    write(out, t, "special.csv", "a,b\nnan,1\ninf,-inf\n1e39,2\n")
    f = "fuzz_features_csv"
    meta = {"features.backbone": "resnet18", "features.weights": "w.safetensors",
            "features.weights_sha256": "0" * 64, "features.levels": "0,1", "features.size": "224",
            "features.crop": "0", "features.filter": "bilinear", "features.shorter_side": "0",
            "features.batch": "16", "features.dims": "2,1"}
    line = "# normad-features " + json.dumps(meta, separators=(",", ":")) + "\n"
    write(out, f, "with_line.csv", line + "name,f0,f1,f2\na.png,1,2,3\nb.png,4,5,6\n")
    write(out, f, "plain.csv", "name,f0,f1\na.png,0.5,1\nb.png,2,3\n")


def idx_bytes(arr):
    head = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def idx_seeds(out):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(2, 3, 3))
    write(out, "fuzz_idx", "images.idx", idx_bytes(imgs))
    write(out, "fuzz_idx", "images.idx.gz", gzip.compress(idx_bytes(imgs), mtime=0))
    write(out, "fuzz_idx", "labels.idx", idx_bytes(np.array([3, 1, 4])))


def mat_seeds(out):
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    y = np.array([[0], [1], [0], [0]], dtype=np.float64)
    for name, kw in (("odds.mat", {}), ("odds_compressed.mat", {"do_compression": True})):
        b = io.BytesIO()
        scipy.io.savemat(b, {"X": X, "y": y}, **kw)
        write(out, "fuzz_mat", name, b.getvalue())
    b = io.BytesIO()
    scipy.io.savemat(b, {"X": X.astype(np.float32), "y": y.astype(np.uint8).T, "s": "text",
                         "i": np.array([[1, -2]], dtype=np.int16)})
    write(out, "fuzz_mat", "mixed.mat", b.getvalue())


def image_seeds(out):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8))
    for fmt, name, img in (("PNG", "rgb.png", rgb), ("PNG", "gray.png", rgb.convert("L")),
                           ("PNG", "rgba.png", rgb.convert("RGBA")), ("PNG", "palette.png", rgb.convert("P")),
                           ("BMP", "rgb.bmp", rgb), ("JPEG", "rgb.jpg", rgb), ("JPEG", "gray.jpg", rgb.convert("L")),
                           ("JPEG", "progressive.jpg", rgb)):
        b = io.BytesIO()
        img.save(b, fmt, **({"progressive": True} if name.startswith("progressive") else {}))
        write(out, "fuzz_image", name, b.getvalue())
    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 65536, size=(5, 4), dtype=np.uint16)).save(b, "PNG")
    write(out, "fuzz_image", "gray16.png", b.getvalue())


def model_seeds(out, normad):
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        rows = ["a,b,kind,label"]
        for i in range(60):
            lab = "n" if i % 3 else "a"
            shift = 0 if lab == "n" else 3
            rows.append(f"{rng.normal() + shift:.4f},{rng.normal():.4f},{'xy'[i % 2]},{lab}")
        table = os.path.join(tmp, "t.csv")
        open(table, "w").write("\n".join(rows) + "\n")
        common = ["--data", table, "--label", "label", "--one-hot", "kind", "--threads", "1"]
        runs = {
            "ntl.safetensors": ["--model", "ntl", "--normal", "n", "--epochs", "2", "--transformations", "2"],
            "dsvdd.safetensors": ["--model", "dsvdd", "--normal", "n", "--epochs", "2", "--widths", "4,2"],
            "acr-dsvdd.safetensors": ["--model", "acr-dsvdd", "--iters", "1", "--batch", "4"],
            "acr-ntl.safetensors": ["--model", "acr-ntl", "--iters", "1", "--batch", "4"],
        }
        for name, args in runs.items():
            path = os.path.join(tmp, name)
            subprocess.run([normad, "train", *common, *args, "--out", path], check=True, capture_output=True)
            data = open(path, "rb").read()
            write(out, "fuzz_model", name, data)
            if not name.startswith("acr"):  # the ACR files (160 KB, 1.5 MB) add nothing for the parser
                write(out, "fuzz_safetensors", name, data)
        feats = os.path.join(tmp, "f.csv")
        frows = ["name,f0,f1,f2"] + [f"i{i}.png,{rng.normal():.4f},{rng.normal():.4f},{rng.normal():.4f}"
                                     for i in range(40)]
        open(feats, "w").write("\n".join(frows) + "\n")
        path = os.path.join(tmp, "mvg.safetensors")
        subprocess.run([normad, "mvg", "fit", "--features", feats, "--out", path, "--threads", "1"], check=True,
                       capture_output=True)
        write(out, "fuzz_model", "mvg.safetensors", open(path, "rb").read())
    # A hand-made file: every dtype the parser converts, and metadata.
    header = {"__metadata__": {"k": "v", "n": "1.5"},
              "f16": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
              "f64": {"dtype": "F64", "shape": [1], "data_offsets": [4, 12]},
              "i64": {"dtype": "I64", "shape": [1, 1], "data_offsets": [12, 20]},
              "i32": {"dtype": "I32", "shape": [], "data_offsets": [20, 24]}}
    h = json.dumps(header).encode()
    payload = np.array([1, -2], np.float16).tobytes() + np.array([3.5]).tobytes() + \
        np.array([7], np.int64).tobytes() + np.array([5], np.int32).tobytes()
    write(out, "fuzz_safetensors", "dtypes.safetensors", struct.pack("<Q", len(h)) + h + payload)


def main():
    normad = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "corpus")
    csv_seeds(out)
    idx_seeds(out)
    mat_seeds(out)
    image_seeds(out)
    model_seeds(out, normad)


if __name__ == "__main__":
    main()
