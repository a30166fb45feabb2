#!/usr/bin/env python3
# Times one training step of each model workload in normad (build/normad_bench, bench_models.cpp)
# and in PyTorch (python3-torch, the reference implementations' way: one forward pass per task) on
# the same T cores, and prints one line per workload:
#   <name> normad_ms=<x> torch_ms=<y> speedup=<y/x>        (speedup > 1: normad is faster)
# Threads: both run under `taskset -c 0..T-1`; torch gets set_num_threads(T) and, for T > 1, is run
# with OPENBLAS_NUM_THREADS=1 and =T, keeping the faster (its fastest set-up on these cores).
# Workloads: acr_dsvdd_step/omniglot_t32_q30, dsvdd_step/lenet_mnist_n128, acr_ntl_step/tab_t4_q512_d570_k19,
# acr_dsvdd_score/omniglot_n1000 (zero-shot scoring, no graph). Usage: python3 bench/compare_torch.py [--threads T]
# Also per step: normad's GFLOP/s (the step's GEMM-shaped work, counted by normad's op profiler)
# and its fraction of the machine's FLOP ceiling, the best large SGEMM reached on the same cores
# (normad's matmul or raw Eigen, bench cases linear_fwd/ and gemm_eigen_tbb/, or PyTorch's
# torch.mm 2048^3 in its fastest set-up). Issue 14's target for a step: speed-up >= 2.5 or >= 80% of the ceiling (either bar).
# Then each step's peak memory (whole-process peak RSS, each step alone in its own process, both
# sides; PyTorch's lower peak of 1 and T BLAS threads) and each side's baseline with no step run.
import os
import subprocess
import sys

from bench_common import arg_parser, cpus, flop_ceiling, peak_rss_mb, run_normad, run_normad_all, run_python


TORCH_SCRIPT = r'''
import math, sys, time, torch
import torch.nn.functional as F
threads = int(sys.argv[1]); torch.set_num_threads(threads); torch.manual_seed(1)
dev = sys.argv[2] if len(sys.argv) > 2 else 'cpu'  # bench/compare_torch_cuda.py runs these steps with 'cuda'
only = sys.argv[3] if len(sys.argv) > 3 else ''  # one workload (peak-memory runs), '' all; 'none': just torch
timed_seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
sync = torch.cuda.synchronize if dev == 'cuda' else (lambda: None)
if dev == 'cuda':  # fp32 as normad (PyTorch lets cuDNN use TF32 by default), its fastest algorithms
    torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True

def report(name, step, warm=3):
    """Warm up, then run `step` for timed_seconds and print its mean time in ms."""
    seconds = timed_seconds
    for _ in range(warm): step()
    sync(); n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(); sync(); n += 1
    print(name, 1000 * (time.perf_counter() - t0) / n)

class OmniglotNet(torch.nn.Module):  # acr.md 7.1
    def __init__(self):
        super().__init__()
        self.convs = torch.nn.ModuleList([torch.nn.Conv2d(1 if i == 0 else 64, 64, 3, 2, 1) for i in range(4)])
        self.bns = torch.nn.ModuleList([torch.nn.BatchNorm2d(64) for _ in range(4)])
        self.head, self.bn_out = torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32)
    def forward(self, x):
        for c, b in zip(self.convs, self.bns):
            x = F.relu(b(c(x)))
        return self.bn_out(self.head(x.mean((2, 3))))

def acr_dsvdd():
    T, Q = 32, 30
    net = OmniglotNet().to(dev); c = torch.randn(32).to(dev).requires_grad_()
    opt = torch.optim.Adam(list(net.parameters()) + [c], lr=1e-3)
    x = torch.rand(T * Q, 1, 28, 28).to(dev); y = (torch.arange(T * Q) % 2).float().to(dev)
    def step():
        losses = []
        for k in range(T):  # the reference: one forward pass (one BN batch) per task
            d = ((net(x[k*Q:(k+1)*Q]) - c) ** 2).sum(1)
            yk = y[k*Q:(k+1)*Q]
            losses.append(((1 - yk) * d + yk / d).mean())
        loss = torch.stack(losses).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    report("acr_dsvdd_step/omniglot_t32_q30", step)

def acr_dsvdd_score():  # zero-shot scoring: one batch of 1000 with its own BN statistics, no graph
    net = OmniglotNet().to(dev).train(); c = torch.randn(32).to(dev)
    x = torch.rand(1000, 1, 28, 28).to(dev)
    def score():
        with torch.no_grad():
            return ((net(x) - c) ** 2).sum(1)
    report("acr_dsvdd_score/omniglot_n1000", score)

class LeNet(torch.nn.Module):  # ntl_dsvdd.md A.4 MNIST_LeNet: bias-free, affine-free BN eps 1e-4
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 5, bias=False, padding=2)
        self.bn1 = torch.nn.BatchNorm2d(8, eps=1e-04, affine=False)
        self.conv2 = torch.nn.Conv2d(8, 4, 5, bias=False, padding=2)
        self.bn2 = torch.nn.BatchNorm2d(4, eps=1e-04, affine=False)
        self.fc1 = torch.nn.Linear(4 * 7 * 7, 32, bias=False)
    def forward(self, x):
        x = F.max_pool2d(F.leaky_relu(self.bn1(self.conv1(x))), 2, 2)
        x = F.max_pool2d(F.leaky_relu(self.bn2(self.conv2(x))), 2, 2)
        return self.fc1(x.view(x.size(0), -1))

def dsvdd():
    lenet = LeNet().to(dev); cc = torch.full((32,), 0.1).to(dev)
    opt2 = torch.optim.Adam(lenet.parameters(), lr=1e-4, weight_decay=0.5e-6)
    xl = torch.rand(128, 1, 28, 28).to(dev)
    def step2():
        loss = torch.mean(torch.sum((lenet(xl) - cc) ** 2, dim=1))
        opt2.zero_grad(); loss.backward(); opt2.step()
    report("dsvdd_step/lenet_mnist_n128", step2)

# ACR-NTL (acr.md 7.4): 19 forward-type transformations, encoder MLP without its final BN; one
# encoder pass per task over its 20 views (the reference loop); DCL L_n and L_a.
def acr_ntl():
    D, K, H, Z, T3, Q3, tau = 570, 19, 128, 32, 4, 512, 0.1
    trans = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), torch.nn.Linear(H, H),
                                                     torch.nn.ReLU(), torch.nn.Linear(H, D)) for _ in range(K)])
    enc = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.BatchNorm1d(H), torch.nn.ReLU(), torch.nn.Linear(H, H),
                              torch.nn.BatchNorm1d(H), torch.nn.ReLU(), torch.nn.Linear(H, H), torch.nn.BatchNorm1d(H),
                              torch.nn.ReLU(), torch.nn.Linear(H, Z))
    trans, enc = trans.to(dev), enc.to(dev)
    opt3 = torch.optim.Adam(list(trans.parameters()) + list(enc.parameters()), lr=4e-4)
    x3 = torch.randn(T3 * Q3, D).to(dev); y3 = (torch.arange(T3 * Q3) % 5 == 0).float().to(dev)
    eye = torch.eye(K + 1).to(dev)
    def step3():
        losses = []
        for k in range(T3):
            xk = x3[k*Q3:(k+1)*Q3]
            z = enc(torch.cat([xk] + [m(xk) for m in trans], 0)).reshape(K + 1, Q3, Z).transpose(0, 1)
            u = F.normalize(z, dim=-1)
            h = torch.exp(u @ u.transpose(1, 2) / tau)
            den = (h * (1 - eye)).sum(-1)[:, 1:]; pos = h[:, 1:, 0]
            ln = (torch.log(den) - torch.log(pos)).sum(1) / (K * math.log(K))
            la = (-torch.log(1 - pos / den)).sum(1) / (K * math.log(K))
            yk = y3[k*Q3:(k+1)*Q3]
            losses.append(((1 - yk) * ln + yk * la).mean())
        loss = torch.stack(losses).mean()
        opt3.zero_grad(); loss.backward(); opt3.step()
    report("acr_ntl_step/tab_t4_q512_d570_k19", step3, warm=2)

WORKLOADS = {'acr_dsvdd_step/omniglot_t32_q30': acr_dsvdd, 'acr_dsvdd_score/omniglot_n1000': acr_dsvdd_score,
             'dsvdd_step/lenet_mnist_n128': dsvdd,
             'acr_ntl_step/tab_t4_q512_d570_k19': acr_ntl}
for name, workload in WORKLOADS.items():
    if only in ('', name): workload()
'''


def run_torch(t):
    """{name: (ms, set-up)}: each case's fastest PyTorch set-up (BLAS threads[,OpenBLAS core type])."""
    best = {}
    for setup, res in run_python(t, TORCH_SCRIPT, [t], omp=t):
        for name, ms in res.items():
            if ms < best.get(name, (float("inf"),))[0]:
                best[name] = (ms, setup)
    return best


def peak_memory(t, bench, names):
    """{name: (normad MiB, torch MiB)}: each step's whole-process peak RSS, every step in a process of
    its own (normad's bench binary on that case alone, PyTorch's script on that workload alone, at 1
    and at t BLAS threads, keeping its lower peak), plus "(baseline)": the same processes running no
    step (normad: the binary's start, with its libraries; PyTorch: the interpreter and `import torch`)."""
    def torch_peak(name):
        peaks = []
        for blas in sorted({1, t}):
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas), OMP_NUM_THREADS=str(t))
            cmd = ["taskset", "-c", cpus(t), "/usr/bin/python3", "-c", TORCH_SCRIPT, str(t), "cpu", name, "0.5"]
            peaks.append(peak_rss_mb(cmd, env))
        return min(peaks)

    def normad_peak(pattern):
        return peak_rss_mb(["taskset", "-c", cpus(t), bench, f"--benchmark_filter={pattern}"])

    out = {"(baseline)": (normad_peak("^$"), torch_peak("none"))}
    for name in names:
        out[name] = (normad_peak(f"^{name}(/|$)"), torch_peak(name))  # names end in /min_time:...
    return out


def gemm_engine(bench):
    """What `normad --version` (beside the bench binary) says of the CPU GEMM engine."""
    cli = os.path.join(os.path.dirname(os.path.abspath(bench)), "normad")
    try:
        out = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True).stdout
        return out.split("CPU GEMM ", 1)[1].split(";")[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def main():
    a = arg_parser().parse_args()
    steps = run_normad_all(a.threads, a.bench, "^([a-z_]+_step|acr_dsvdd_score)/")  # not cuda/..., not mvg_
    n = {name: b["real_time"] for name, b in steps.items() if not b.get("error_occurred")}
    # normad's own matmul (its GEMM engine: OpenBLAS or Eigen) and raw Eigen, 4096 x 512 x 512
    ceiling, normad_ceiling, torch_ceiling = flop_ceiling(a.threads, a.bench)
    t = run_torch(a.threads)
    print(f"# FLOP ceiling on {a.threads} core(s): {ceiling:.1f} GFLOP/s (normad GEMM {normad_ceiling:.1f}, "
          f"torch.mm {torch_ceiling:.1f}); normad's CPU GEMM engine: {gemm_engine(a.bench)}")
    for name in sorted(n):
        gflops = steps[name].get("flops", 0) / 1e9
        frac = gflops / ceiling if ceiling else 0
        if name in t:
            ms, setup = t[name]
            speedup = ms / n[name]
            # a training step: 2.5x or 80% of the ceiling; batch scoring: 2.5x (issue 14)
            ok = speedup >= 2.5 or ("_step/" in name and frac >= 0.8)
            met = "met" if ok else "NOT met"
            # (printed with enough digits that bench/median_of_runs.py's verdict on the medians
            # cannot round a 79.8% or a 2.496x up to the bar: it once read 80% for 79.6-79.8)
            print(f"{name} normad_ms={n[name]:.1f} torch_ms={ms:.1f} speedup={speedup:.3f} "
                  f"normad_gflops={gflops:.1f} of_ceiling={100 * frac:.1f}% target={met} torch_setup={setup}")
        else:
            print(f"{name} normad_ms={n[name]:.1f} normad_gflops={gflops:.1f} of_ceiling={100 * frac:.1f}% (no torch case)")
    # Issue 14's memory target: each step's peak no higher than PyTorch's (whole process, as
    # /usr/bin/time -v); "own" is the peak above that process's baseline.
    mem = peak_memory(a.threads, a.bench, sorted(name for name in n if name in t))
    base_n, base_t = mem.pop("(baseline)")
    print(f"# peak RSS, whole process, MiB; baseline (no step): normad {base_n:.0f}, torch {base_t:.0f}")
    for name, (pn, pt) in mem.items():
        met = "met" if pn <= pt else "NOT met"
        print(f"{name} normad_peak_mib={pn:.0f} torch_peak_mib={pt:.0f} normad_own_mib={pn - base_n:.0f} "
              f"torch_own_mib={pt - base_t:.0f} memory_target={met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
