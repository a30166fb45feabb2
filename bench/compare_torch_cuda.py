#!/usr/bin/env python3
# normad's CUDA benchmarks (build/normad_bench, bench/bench_cuda.cpp: cases cuda/...) beside PyTorch
# with cuDNN on the same GPU in the same run, one line per case:
#   <name> normad_ms=<x> torch_ms=<y> speedup=<y/x> [<rate>]     (speedup > 1: normad is faster)
# where <rate> is normad's achieved GB/s or TFLOP/s. normad's kernel versions (.../v1, .../v2) are
# listed beside its automatic pick (.../auto); the torch time is the same for each.
# PyTorch's set-up: fp32 everywhere (TF32 off for cuBLAS and cuDNN, as normad's default),
# cudnn.benchmark on (its fastest algorithm per shape), timed with CUDA events after a warm-up.
# The training steps (ACR-DSVDD: the reference way, one forward per task; Deep SVDD LeNet) are the
# CPU comparison's own PyTorch script (bench/compare_torch.py) run with device 'cuda'.
# At the end: the targets (batch norm >= 80% of the measured copy bandwidth, distances >= 70%
# of the cuBLAS GEMM form, conv within 1.25x of cuDNN (the worst shape), the ACR step >= 5x PyTorch).
# Usage: python3 bench/compare_torch_cuda.py [--bench build/normad_bench] [--json out.json]
#        [--normad-json FILE: normad's figures from an earlier `normad_bench --benchmark_filter=^cuda/
#         --benchmark_out=FILE` instead of running it] [--libdir DIR: LD_LIBRARY_PATH for normad_bench]
# A PyTorch failure (a torchvision that does not match torch, say) is reported and normad's figures
# are still printed.
import json
import subprocess
import sys

from bench_common import arg_parser, run_normad_all
from compare_torch import TORCH_SCRIPT

TORCH_KERNELS = r'''
import sys, torch
import torch.nn.functional as F
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.benchmark = True
dev = 'cuda'

def report(name, step, warm=3, reps=20):
    """Warm up, then time `reps` runs of `step` with CUDA events; prints the mean in ms."""
    for _ in range(warm): step()
    torch.cuda.synchronize()
    t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0.record()
    for _ in range(reps): step()
    t1.record(); torch.cuda.synchronize()
    print(name, t0.elapsed_time(t1) / reps)

g = torch.Generator(device=dev).manual_seed(0)
def randn(*s): return torch.randn(*s, device=dev, generator=g)

src = torch.zeros(1 << 28, device=dev); dst = torch.empty_like(src)
report("cuda/copy_d2d/1GiB", lambda: dst.copy_(src))

CONVS = [  # name, x, w, stride, pad, groups (bench/bench_cuda.cpp kConvs)
    ("omniglot28_l1", (960, 1, 28, 28), (64, 1, 3, 3), 2, 1, 1),
    ("omniglot28_l2", (960, 64, 14, 14), (64, 64, 3, 3), 2, 1, 1),
    ("omniglot105_l1", (960, 1, 105, 105), (64, 1, 3, 3), 2, 1, 1),
    ("omniglot105_l2", (960, 64, 53, 53), (64, 64, 3, 3), 2, 1, 1),
    ("lenet_5x5", (128, 1, 28, 28), (8, 1, 5, 5), 1, 2, 1),
    ("resnet18_conv1", (32, 3, 224, 224), (64, 3, 7, 7), 2, 3, 1),
    ("resnet18_layer1", (32, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    ("resnet18_layer2", (32, 128, 28, 28), (128, 128, 3, 3), 1, 1, 1),
    ("resnet18_layer3", (32, 256, 14, 14), (256, 256, 3, 3), 1, 1, 1),
    ("resnet18_layer4", (32, 512, 7, 7), (512, 512, 3, 3), 1, 1, 1),
    ("resnet50_1x1", (32, 256, 56, 56), (64, 256, 1, 1), 1, 0, 1),
    ("effnet_depthwise", (32, 144, 56, 56), (144, 1, 3, 3), 1, 1, 144),
]
for name, xs, ws, s, p, gr in CONVS:
    x, w = randn(*xs), randn(*ws)
    out = F.conv2d(x, w, None, s, p, 1, gr)
    dout = randn(*out.shape)
    report(f"cuda/conv2d_fwd/{name}", lambda: F.conv2d(x, w, None, s, p, 1, gr))
    report(f"cuda/conv2d_bwd_input/{name}", lambda: torch.nn.grad.conv2d_input(x.shape, w, dout, s, p, 1, gr))
    report(f"cuda/conv2d_bwd_weight/{name}", lambda: torch.nn.grad.conv2d_weight(x, w.shape, dout, s, p, 1, gr))

def bn_step(x, dout, gamma, beta):
    xr = x.detach().requires_grad_()
    y = F.batch_norm(xr, None, None, gamma, beta, training=True, eps=1e-5)
    torch.autograd.grad(y, (xr, gamma, beta), dout)

for name, shape in [("n960_c64_14x14", (960, 64, 14, 14)), ("n256_c256_56x56", (256, 256, 56, 56))]:
    x, dout = randn(*shape), randn(*shape)
    gamma = torch.ones(shape[1], device=dev, requires_grad=True); beta = torch.zeros(shape[1], device=dev, requires_grad=True)
    report(f"cuda/batch_norm_fwd_bwd/{name}", lambda: bn_step(x, dout, gamma, beta))
# grouped: 32 tasks of 30 rows, each its own statistics; the reference way is one BN per task
x, dout = randn(960, 64, 14, 14), randn(960, 64, 14, 14)
gamma = torch.ones(64, device=dev, requires_grad=True); beta = torch.zeros(64, device=dev, requires_grad=True)
def grouped():
    xr = x.detach().requires_grad_()
    ys = [F.batch_norm(xr[k*30:(k+1)*30], None, None, gamma, beta, training=True, eps=1e-5) for k in range(32)]
    torch.autograd.grad(torch.cat(ys), (xr, gamma, beta), dout)
report("cuda/batch_norm_grouped/g32_q30_c64_14x14", grouped)

a, b = randn(8192, 512), randn(8192, 512)
def gemm_form():  # FAISS's form: |a|^2 + |b|^2 - 2 a b^T, clamped at 0
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T).clamp_min_(0)
report("cuda/pairwise_sqdist/8192x8192x512", gemm_form)

# Gaussian-AD scoring: |(x - mu) W^T| per row, 100 000 rows of 1792 features
xs, mu, wh = randn(100000, 1792), randn(1792), randn(1792, 1792)
report("cuda/mvg_score/n100000_d1792", lambda: ((xs - mu) @ wh.T).norm(dim=1))

try:  # WideResNet-50-2 features of 32 images (every stage), when torchvision is there
    import torchvision
    wrn = torchvision.models.wide_resnet50_2().to(dev).eval()
    xi = randn(32, 3, 224, 224)
    def wrn_features():
        with torch.no_grad():
            h = wrn.maxpool(wrn.relu(wrn.bn1(wrn.conv1(xi))))
            for layer in (wrn.layer1, wrn.layer2, wrn.layer3, wrn.layer4):
                h = layer(h)
    report("cuda/wrn50_2_features/n32_224", wrn_features)
except Exception as e:  # no torchvision, or one that does not match torch
    print("# wide_resnet50_2 skipped:", type(e).__name__, file=sys.stderr)
'''


def run_torch_lines(script, args, failures):
    """{name: ms} printed by a PyTorch script; a failure is reported, appended to `failures`, and
    gives what the script printed before it."""
    p = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    if p.returncode != 0:
        why = (p.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"pytorch script failed (exit {p.returncode}): {why}")
        failures.append(why)
    return {ln.split()[0]: float(ln.split()[1]) for ln in p.stdout.splitlines() if len(ln.split()) == 2}


def main():
    ap = arg_parser()
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--normad-json", help="normad_bench's JSON output of the cuda/ cases (else run it)")
    ap.add_argument("--libdir", help="LD_LIBRARY_PATH for normad_bench (the device bundle's libraries)")
    a = ap.parse_args()
    if a.normad_json:
        with open(a.normad_json) as f:
            records = {b["name"].split("/min_time")[0].replace("/real_time", ""): b for b in json.load(f)["benchmarks"]}
    else:
        records = run_normad_all(a.threads, a.bench, "^cuda/", env={"LD_LIBRARY_PATH": a.libdir} if a.libdir else None)
    skipped = [n for n, b in records.items() if b.get("error_occurred")]
    for n in skipped:
        print(f"{n} {records[n].get('error_message', 'failed')}")
    normad = {n: b["real_time"] for n, b in records.items() if n not in skipped}
    rates = {}  # the achieved rate of each case (its counter), formatted
    for name in normad:
        for key in ("GB/s", "TFLOP/s", "images/s", "rows/s"):
            if key in records[name]:
                v = records[name][key]
                rates[name] = f"{v:.2f} {key}" if key == "TFLOP/s" else f"{v:.1f} {key}"
    failures = []
    torch = run_torch_lines(TORCH_KERNELS, [], failures)
    torch.update({"cuda/" + k: v for k, v in run_torch_lines(TORCH_SCRIPT, ["1", "cuda"], failures).items()})
    sys.stdout.flush()
    rows = []
    for name in sorted(normad):
        base = name.rsplit("/", 1)[0] if name.rsplit("/", 1)[-1] in ("auto", "v1", "v2", "v3") else name
        t = torch.get(base)
        line = f"{name} normad_ms={normad[name]:.3f}"
        if t is not None:
            line += f" torch_ms={t:.3f} speedup={t / normad[name]:.2f}"
        if name in rates:
            line += f" {rates[name]}"
        print(line)
        rows.append({"name": name, "normad_ms": normad[name], "torch_ms": t, "rate": rates.get(name)})
    # the targets, from the figures above (auto versions: what users get)
    copy_gbs = 2 * 4 * (1 << 28) / (normad["cuda/copy_d2d/1GiB"] * 1e-3) / 1e9 if "cuda/copy_d2d/1GiB" in normad else None
    # (what, value or None when a figure is missing, target)
    checks = []
    bn = normad.get("cuda/batch_norm_fwd_bwd/n256_c256_56x56/auto")
    bn_gbs = 5 * 4 * 256 * 256 * 56 * 56 / (bn * 1e-3) / 1e9 if bn else None
    checks.append(("batch norm large fwd+bwd vs copy bandwidth", bn_gbs / copy_gbs if bn_gbs and copy_gbs else None, 0.80))
    pw, pw3 = normad.get("cuda/pairwise_sqdist/8192x8192x512/auto"), normad.get("cuda/pairwise_sqdist/8192x8192x512/v3")
    checks.append(("pairwise distances vs the cuBLAS GEMM form", pw3 / pw if pw and pw3 else None, 0.70))
    conv = [(torch[n.rsplit("/", 1)[0]] / normad[n], n) for n in normad
            if n.startswith("cuda/conv2d_") and n.endswith("/auto") and n.rsplit("/", 1)[0] in torch]
    worst = min(conv) if conv else (None, "")
    checks.append((f"conv2d vs cuDNN, worst shape {worst[1]}", worst[0], 1 / 1.25))
    acr, tacr = normad.get("cuda/acr_dsvdd_step/omniglot_t32_q30"), torch.get("cuda/acr_dsvdd_step/omniglot_t32_q30")
    checks.append(("ACR iteration speedup over PyTorch eager", tacr / acr if acr and tacr else None, 5.0))
    if copy_gbs:
        print(f"device-to-device copy bandwidth: {copy_gbs:.0f} GB/s")
    for what, value, target in checks:
        if value is None:
            print(f"target {what}: NOT MEASURED (a normad or PyTorch figure is missing)")
        else:
            print(f"target {what}: {value:.2f} (target >= {target:.2f}) {'met' if value >= target else 'NOT met'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "copy_gbs": copy_gbs, "targets": checks, "skipped": skipped,
                       "pytorch_failures": failures}, f, indent=1)
    # a run that measured nothing, or without its yardstick, must not read as a success
    if not normad:
        print("no normad figures: every cuda/ case skipped or failed")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
