#!/usr/bin/env python3
# Backbone inference throughput, normad against PyTorch/torchvision on the same T cores: runs the
# backbone/ cases of normad's benchmark binary (bench/bench_backbones.cpp) and the same workloads in
# torchvision (eval mode, torch.no_grad(), float32, the forward stopped at the same level), and
# prints one line per workload:
#   <name> normad_img_s=<x> torch_img_s=<y> ratio=<x/y>        (ratio > 1: normad is faster)
# Math: images/s = batch / wall seconds per forward pass (mean over >= `--seconds` of passes).
# Workloads: resnet18 224 batch 8 (levels 0..4), efficientnet_b4 380 batch 4 (all nine levels,
# features[0..8]), wide_resnet50_2 224 batch 8 up to layer3 (acr.md §7.5).
# Threads: both run under `taskset -c 0..T-1`; torch gets set_num_threads(T), OMP_NUM_THREADS=T
# and, for T > 1, is run with OPENBLAS_NUM_THREADS=1 and =T keeping the faster (its fastest set-up
# on these cores). The weights are random (throughput does not depend on them).
# Usage: python3 bench/compare_backbones.py [--threads T] [--bench build/normad_bench]
#        [--seconds S] [--tiny]   (--tiny: batch 1 at 64x64, a quick check that both sides run)
import json
import sys

from bench_common import arg_parser, run_normad, run_python


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

for bench, name, n, size, last in work:
    net, x = body(name, last), torch.randn(n, 3, size, size)
    with torch.no_grad():
        for _ in range(2): net(x)  # warm-up
        k, t0 = 0, time.perf_counter()
        while k < 2 or time.perf_counter() - t0 < seconds:
            net(x); k += 1
        dt = (time.perf_counter() - t0) / k
    print(bench, n / dt, flush=True)
'''


def run_torch(t, seconds, work):
    best = {}
    for _, res in run_python(t, TORCH_SCRIPT, [t, seconds, json.dumps(work)], omp=t):
        for name, ips in res.items():
            best[name] = max(best.get(name, 0.0), ips)
    return best


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
    t = run_torch(a.threads, a.seconds, work)
    print(f"threads {a.threads}" + (" (tiny: batch 1, 64x64)" if a.tiny else ""))
    for b, *_ in work:
        if b in n and b in t:
            print(f"{b} normad_img_s={n[b]:.2f} torch_img_s={t[b]:.2f} ratio={n[b] / t[b]:.2f}")
        else:
            print(f"{b} normad_img_s={n.get(b, float('nan')):.2f} torch_img_s={t.get(b, float('nan')):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
