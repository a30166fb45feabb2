#!/usr/bin/env python3
# Backbone inference throughput, normad against PyTorch/torchvision on the same T cores: runs the
# backbone/ cases of normad's benchmark binary (bench/bench_backbones.cpp) and the same workloads in
# torchvision (eval mode, torch.no_grad(), float32, the forward stopped at the same level), and
# prints one line per workload:
#   <name> normad_img_s=<x> torch_img_s=<y> ratio=<x/y>        (ratio > 1: normad is faster)
#          gflop_per_image=<g> normad_of_ceiling=<%> torch_of_ceiling=<%>
# Math: images/s = batch / wall seconds per forward pass (mean over >= `--seconds` of passes);
# GFLOP/s = images/s x g, g = 2 x the multiply-adds of the Conv2d and Linear layers (forward hooks
# in torchvision), as a share of the FLOP ceiling (the best large SGEMM on the same cores).
# Workloads: resnet18 224 batch 8 (levels 0..4), efficientnet_b4 380 batch 4 (all nine levels,
# features[0..8]), wide_resnet50_2 224 batch 8 up to layer3 (acr.md §7.5).
# Threads: both run under `taskset -c 0..T-1`; torch gets set_num_threads(T), OMP_NUM_THREADS=T
# and, for T > 1, is run with OPENBLAS_NUM_THREADS=1 and =T keeping the faster (its fastest set-up
# on these cores). The weights are random (throughput does not depend on them).
# Usage: python3 bench/compare_backbones.py [--threads T] [--bench build/normad_bench]
#        [--seconds S] [--tiny]   (--tiny: batch 1 at 64x64, a quick check that both sides run)
import json
import sys

from bench_common import arg_parser, flop_ceiling, run_normad, run_python


# (benchmark name, torchvision name, batch, size, deepest level)
WORKLOADS = [
    ("backbone/resnet18_224_n8", "resnet18", 8, 224, 4),
    ("backbone/efficientnet_b4_380_n4", "efficientnet_b4", 4, 380, 8),
    ("backbone/wide_resnet50_2_layer3_224_n8", "wide_resnet50_2", 8, 224, 3),
]

TORCH_SCRIPT = r'''
import json, sys, time, torch, torchvision
threads, seconds, work = int(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
torch.set_num_threads(threads); torch.manual_seed(0)

def body(name, last):
    """torchvision's modules up to level `last` (ResNet 0 = stem + max-pool, 1..4 = layer1..4;
    EfficientNet l = features[l]), as one Sequential."""
    m = getattr(torchvision.models, name)().eval()
    if name.startswith("efficientnet"):
        return torch.nn.Sequential(*list(m.features)[:last + 1])
    mods = [m.conv1, m.bn1, m.relu, m.maxpool] + [m.layer1, m.layer2, m.layer3, m.layer4][:last]
    return torch.nn.Sequential(*mods)

def conv_linear_flops(net, x):
    """FLOPs of one forward of net on x: 2 x the multiply-adds of its Conv2d and Linear layers (batch
    norm, activations and pooling not counted), from forward hooks on one pass."""
    total = [0]
    def hook(m, inp, out):
        if isinstance(m, torch.nn.Conv2d):
            total[0] += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total[0] += 2 * out.numel() * m.in_features
    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return total[0]

for bench, name, n, size, last in work:
    net, x = body(name, last), torch.randn(n, 3, size, size)
    print(bench + "/gflop_per_image", conv_linear_flops(net, x) / n / 1e9, flush=True)
    with torch.no_grad():
        for _ in range(2): net(x)  # warm-up
        k, t0 = 0, time.perf_counter()
        while k < 2 or time.perf_counter() - t0 < seconds:
            net(x); k += 1
        dt = (time.perf_counter() - t0) / k
    print(bench, n / dt, flush=True)
'''


def run_torch(t, seconds, work):
    """({workload: PyTorch's best images/s over its set-ups}, {workload: GFLOP per image})."""
    best, gflop = {}, {}
    for _, res in run_python(t, TORCH_SCRIPT, [t, seconds, json.dumps(work)], omp=t):
        for name, value in res.items():
            if name.endswith("/gflop_per_image"):
                gflop[name[: -len("/gflop_per_image")]] = value
            else:
                best[name] = max(best.get(name, 0.0), value)
    return best, gflop


def main():
    ap = arg_parser("Backbone inference throughput, normad vs PyTorch/torchvision on the same cores "
                    "(see the header of this file).")
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per case")
    ap.add_argument("--tiny", action="store_true",
                    help="batch 1 at 64x64 on both sides (checks the set-up, not the speed)")
    a = ap.parse_args()
    work = [list(w) for w in WORKLOADS]
    if a.tiny:
        work = [[b, name, 1, 64, last] for b, name, _, _, last in work]
    n = run_normad(a.threads, a.bench, "^backbone/", key="images/s", extra=[f"--benchmark_min_time={a.seconds}"],
                   env={"NORMAD_BENCH_TINY": "1" if a.tiny else "0"})
    t, gflop = run_torch(a.threads, a.seconds, work)
    ceiling = flop_ceiling(a.threads, a.bench)[0]
    print(f"threads {a.threads}" + (" (tiny: batch 1, 64x64)" if a.tiny else "")
          + f"; FLOP ceiling {ceiling:.1f} GFLOP/s (bench/bench_common.py flop_ceiling)")
    for b, *_ in work:
        if b in n and b in t:
            # each side's rate in GFLOP/s (convolutions and linear layers) and its share of the ceiling:
            # how far above PyTorch the machine leaves room for
            g = gflop.get(b, 0.0)
            share = "".join(f" {side}_of_ceiling={100 * ips * g / ceiling:.1f}%" for side, ips in
                            (("normad", n[b]), ("torch", t[b]))) if g and ceiling else ""
            print(f"{b} normad_img_s={n[b]:.2f} torch_img_s={t[b]:.2f} ratio={n[b] / t[b]:.3f} "
                  f"gflop_per_image={g:.2f}{share}")
        else:
            print(f"{b} normad_img_s={n.get(b, float('nan')):.2f} torch_img_s={t.get(b, float('nan')):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
