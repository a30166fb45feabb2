#!/usr/bin/python3
# Backbone parity fixtures for tests/test_backbones.cpp, written into OUTDIR:
#   <name>.safetensors           seeded torchvision weights (scripts/export_torchvision.py --seed 0)
#   backbone_<name>.safetensors  inputs and torchvision's output at every feature level
# Math: level maps of torchvision in eval mode (BN with running statistics), computed in float64
# from the float32 weights and inputs, then rounded to float32, so the reference carries no float32
# accumulation error of its own. Levels: ResNet 0 = after the stem max-pool, 1..4 = layer1..4;
# EfficientNet 0..8 = features[0..8]. Plus the logits, which check the classifier head's names.
# Inputs: "x" [2, 3, 64, 64] and "odd.x" [1, 3, 45, 37] (odd, non-square: padding and stride
# rounding), torch.randn with seed 1234 (about the scale of ImageNet-normalised pixels).
# Run by ctest as `/usr/bin/python3 tests/make_backbone_fixtures.py OUTDIR`; exits 0 with a message
# when torch or torchvision is missing (the tests then skip). The files (~520 MB, mostly
# wide_resnet50_2) are regenerated only when this script, the exporter or torch/torchvision change:
# each file's __metadata__ carries a key over those, checked before anything is rebuilt.
import hashlib
import json
import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))

try:
    import torch
    import torchvision
except ImportError:
    print("make_backbone_fixtures: python3-torch / python3-torchvision not available, "
          "backbone parity tests are skipped")
    # 77: ctest reports this setup test as skipped (SKIP_RETURN_CODE); under CI=true it fails.
    sys.exit(1 if os.environ.get("CI") == "true" else 77)

import export_torchvision as E  # noqa: E402

SEED = 0


def cache_key():
    """Hash of the two generator scripts and the library versions."""
    h = hashlib.sha256()
    for p in (os.path.abspath(__file__), E.__file__):
        with open(p, "rb") as f:
            h.update(f.read())
    h.update(f"{torch.__version__} {torchvision.__version__}".encode())
    return h.hexdigest()[:16]


def read_metadata(path):
    """__metadata__ of a safetensors file, or None when absent or unreadable."""
    try:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            return json.loads(f.read(n)).get("__metadata__", {})
    except (OSError, ValueError, struct.error):
        return None


def levels(name, m, x):
    """Every feature level of torchvision model m (eval mode) on x, in order, then the logits
    (avgpool, flatten and the head, as torchvision's forward continues from the last level)."""
    out = []
    if name.startswith("efficientnet"):
        h = x
        for f in m.features:  # stem, seven MBConv stages, head conv
            h = f(h)
            out.append(h)
    else:
        h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        out.append(h)
        for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
            h = layer(h)
            out.append(h)
    head = m.classifier if name.startswith("efficientnet") else m.fc
    out.append(head(torch.flatten(m.avgpool(h), 1)))
    return out


def make(name, outdir, key):
    weights = os.path.join(outdir, f"{name}.safetensors")
    fixture = os.path.join(outdir, f"backbone_{name}.safetensors")
    mw, mf = read_metadata(weights), read_metadata(fixture)
    if mw and mf and mw.get("fixture_key") == key and mf.get("fixture_key") == key:
        return "cached"
    model = E.export(name, weights, seed=SEED, extra_meta={"fixture_key": key})
    m64 = model.double()  # float64 copy of the float32 weights: an exact reference
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(2, 3, 64, 64, generator=g)
    x_odd = torch.randn(1, 3, 45, 37, generator=g)
    fx = {"x": x, "odd.x": x_odd}
    with torch.no_grad():
        for prefix, inp in (("", x), ("odd.", x_odd)):
            *maps, logits = levels(name, m64, inp.double())
            for i, t in enumerate(maps):
                fx[f"{prefix}level{i}"] = t.float()
            fx[f"{prefix}logits"] = logits.float()
    E.save_safetensors(fixture, fx, {"backbone": name, "torchvision": torchvision.__version__,
                                     "weights": f"{name}.safetensors", "fixture_key": key})
    return "written"


def main():
    if len(sys.argv) != 2:
        print("usage: make_backbone_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    # One thread: the work is small, and with a busy machine torch's OpenMP threads were measured
    # to slow the float64 EfficientNet-B4 pass from 0.2 s to 244 s (spinning against other jobs).
    torch.set_num_threads(1)
    key = cache_key()
    for name in E.NAMES:
        t0 = time.time()
        what = make(name, outdir, key)
        print(f"make_backbone_fixtures: {name} {what} ({time.time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
