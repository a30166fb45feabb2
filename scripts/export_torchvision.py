#!/usr/bin/python3
# Writes a torchvision backbone's state_dict as a safetensors file that normad's models/backbones.h
# loads by name (nn::load_module or models::load_backbone).
# Math: none; a copy of the weights. Format: u64 little-endian header length | JSON header (keys
# sorted, padded with spaces to 8 bytes) | packed little-endian data: F32 for every float tensor, I64
# for the `*.num_batches_tracked` counters, exactly as torchvision's state_dict holds them.
# Tested by tests/test_backbones.cpp through tests/make_backbone_fixtures.py (which imports
# export()), and by nn/safetensors.cpp reading what this writes.
#
# Usage: /usr/bin/python3 scripts/export_torchvision.py NAME OUT.safetensors (--pretrained | --seed S)
#   --pretrained   ImageNet weights (needs internet or a filled torch hub cache): the weights that
#                  torchvision's legacy `pretrained=True` selects, IMAGENET1K_V1 for all five
#                  backbones (acr.md §7.5 uses these for wide_resnet50_2; --weights picks another).
#   --seed S       torch.manual_seed(S), torchvision's own initialisation, then every BatchNorm's
#                  weight ~ U(0.5, 1.5), bias ~ U(-0.25, 0.25), running_mean ~ U(-0.25, 0.25) and
#                  running_var ~ U(0.5, 2.0) from a generator seeded S + 1, so parity tests
#                  exercise all four BN tensors (torchvision's init leaves them 1, 0, 0, 1).
# The header's __metadata__ records backbone, torchvision version and source (weights or seed).
# The file is written to OUT.tmp and renamed, so an interrupted export leaves no partial file.
import argparse
import json
import os
import struct
import sys

NAMES = ["resnet18", "resnet50", "wide_resnet50_2", "efficientnet_b0", "efficientnet_b4"]

# The enum member of each backbone's weights class that `pretrained=True` selects (torchvision 0.14).
LEGACY_WEIGHTS = {
    "resnet18": ("ResNet18_Weights", "IMAGENET1K_V1"),
    "resnet50": ("ResNet50_Weights", "IMAGENET1K_V1"),
    "wide_resnet50_2": ("Wide_ResNet50_2_Weights", "IMAGENET1K_V1"),
    "efficientnet_b0": ("EfficientNet_B0_Weights", "IMAGENET1K_V1"),
    "efficientnet_b4": ("EfficientNet_B4_Weights", "IMAGENET1K_V1"),
}


def save_safetensors(path, state, meta):
    """Writes {name: torch.Tensor} (float -> F32, int64 -> I64) atomically; returns bytes written."""
    import torch

    header, blobs, offset = {}, [], 0
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        if t.dtype == torch.int64:
            dtype, raw = "I64", t.numpy().astype("<i8").tobytes()
        elif t.is_floating_point():
            dtype, raw = "F32", t.to(torch.float32).numpy().astype("<f4").tobytes()
        else:
            raise ValueError(f"{name}: unsupported dtype {t.dtype}")
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    js = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)  # the data buffer starts 8-byte aligned
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(js)))
            f.write(js)
            for b in blobs:
                f.write(b)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return 8 + len(js) + offset


def randomise_bn(model, seed):
    """Seeded random BN affine parameters and running statistics (see the header)."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_((torch.rand(c, generator=g) - 0.5) * 0.5)
                m.running_mean.copy_((torch.rand(c, generator=g) - 0.5) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)


def build(name, seed=None, weights=None):
    """The torchvision model in eval mode and a description of its weights."""
    import torch
    import torchvision

    if name not in NAMES:
        raise SystemExit(f"export_torchvision: unknown backbone '{name}' (valid: {', '.join(NAMES)})")
    ctor = getattr(torchvision.models, name)
    if weights is not None:
        cls = getattr(torchvision.models, LEGACY_WEIGHTS[name][0])
        if not hasattr(cls, weights):
            valid = ", ".join(w.name for w in cls)
            raise SystemExit(f"export_torchvision: {cls.__name__} has no '{weights}' (valid: {valid})")
        model = ctor(weights=getattr(cls, weights))
        source = f"{LEGACY_WEIGHTS[name][0]}.{weights}"
    else:
        torch.manual_seed(seed)
        model = ctor(weights=None)
        randomise_bn(model, seed)
        source = f"seed {seed} (torchvision init, random BN)"
    return model.eval(), source


def export(name, out, seed=None, weights=None, extra_meta=None):
    """Builds the model, writes OUT and returns the model (eval mode) for further use."""
    import torchvision

    model, source = build(name, seed, weights)
    meta = {"backbone": name, "torchvision": torchvision.__version__, "source": source,
            "format": "pt", **(extra_meta or {})}
    save_safetensors(out, model.state_dict(), meta)
    return model


def main():
    ap = argparse.ArgumentParser(
        description="Export a torchvision backbone's state_dict to safetensors for normad.",
        epilog="--seed S: torch.manual_seed(S), torchvision's own init, then every BatchNorm gets "
               "weight U(0.5,1.5), bias U(-0.25,0.25), running_mean U(-0.25,0.25), running_var "
               "U(0.5,2) from a generator seeded S+1 (so parity tests exercise BN). "
               "--pretrained: the ImageNet weights of torchvision's legacy pretrained=True "
               "(IMAGENET1K_V1), downloaded through torch hub.")
    ap.add_argument("name", choices=NAMES)
    ap.add_argument("out", help="output .safetensors path (written via OUT.tmp and a rename)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pretrained", action="store_true", help="ImageNet weights (IMAGENET1K_V1)")
    src.add_argument("--weights", help="a named weights enum member, e.g. IMAGENET1K_V2")
    src.add_argument("--seed", type=int, help="seeded random weights (see below)")
    a = ap.parse_args()
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        print("export_torchvision: needs python3-torch and python3-torchvision", file=sys.stderr)
        return 2
    weights = LEGACY_WEIGHTS[a.name][1] if a.pretrained else a.weights
    try:
        model = export(a.name, a.out, seed=a.seed, weights=weights)
    except OSError as e:  # urllib's URLError is an OSError: no internet and no hub cache
        print(f"export_torchvision: cannot get the {weights} weights of {a.name} ({e}); they are "
              "downloaded into the torch hub cache (~/.cache/torch/hub/checkpoints)", file=sys.stderr)
        return 2
    n = sum(p.numel() for p in model.parameters())
    print(f"{a.out}: {a.name}, {n} parameters, {len(model.state_dict())} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
