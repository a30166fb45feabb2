#!/usr/bin/python3
# PyTorch timings of the cases in bench/bench_ops.cpp, under the same names, for the comparison ratio.
# Each case: warm-up calls, then time.perf_counter over repeats until --min-time seconds have passed;
# torch_ms is the mean per repeat. FLOP and byte counts are the same formulas as bench_ops.cpp.
# Prints one line per case: "<name> torch_ms=<x> gflops=<y>" (batch norm: "gbps=<y>", GB/s).
#
# Run with Debian's python (python3-torch 1.13): /usr/bin/python3 bench/torch_ops.py --threads T
# (the pyenv python3 earlier on PATH has no torch). Threads: torch.set_num_threads(T) sets the OpenMP
# pool that runs convolutions (oneDNN) and elementwise/batch norm kernels; matmul goes to OpenBLAS
# (pthread build), which has its own pool sized by OPENBLAS_NUM_THREADS (default: all cores).
# The fastest set-up for T cores is usually torch threads = T with OPENBLAS_NUM_THREADS=1 for the
# conv/BN cases (no two pools fighting over the cores) but OPENBLAS_NUM_THREADS=T for the GEMM-bound
# cases (linear, pairwise); bench/compare_ops.py runs both and keeps the faster per case.
#
# Shapes: N batch, C in-channels, F out-channels, H, W input, K kernel, M, D rows and width, G groups.
import argparse
import os
import re
import time

import torch
import torch.nn.functional as F

# name, N, C, F, H, W, K, stride, pad, bias (as conv_cases in bench_ops.cpp)
CONV_CASES = [
    ("omni1_n30", 30, 1, 64, 28, 28, 3, 2, 1, True),
    ("omni2_n30", 30, 64, 64, 14, 14, 3, 2, 1, True),
    ("omni3_n30", 30, 64, 64, 7, 7, 3, 2, 1, True),
    ("omni4_n30", 30, 64, 64, 4, 4, 3, 2, 1, True),
    ("omni1_n960", 960, 1, 64, 28, 28, 3, 2, 1, True),
    ("omni2_n960", 960, 64, 64, 14, 14, 3, 2, 1, True),
    ("omni3_n960", 960, 64, 64, 7, 7, 3, 2, 1, True),
    ("omni4_n960", 960, 64, 64, 4, 4, 3, 2, 1, True),
    ("lenet1_n128", 128, 1, 8, 28, 28, 5, 1, 2, False),
    ("lenet2_n128", 128, 8, 4, 14, 14, 5, 1, 2, False),
    ("r18l1_n8", 8, 64, 64, 56, 56, 3, 1, 1, False),
    ("r18l3_n8", 8, 256, 256, 14, 14, 3, 1, 1, False),
    ("wrnl3_n8", 8, 512, 512, 14, 14, 3, 1, 1, False),
]
# name, shape, groups (as bn_cases in bench_ops.cpp)
BN_CASES = [
    ("n960_c64_14x14", (960, 64, 14, 14), 1),
    ("n4096_c512", (4096, 512), 1),
    ("g32x30_c64", (960, 64), 32),
]


def time_ms(fn, min_time):
    """Mean wall-clock ms per call of fn after warm-up, over repeats totalling >= min_time s."""
    for _ in range(2):
        fn()
    reps, t0 = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time and reps >= 3:
            return 1e3 * elapsed / reps


def conv_cases():
    for name, N, C, Fo, H, W, K, s, p, bias in CONV_CASES:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(N, C, H, W, generator=g)
        w = 0.1 * torch.randn(Fo, C, K, K, generator=g)
        b = torch.randn(Fo, generator=g) if bias else None
        OH, OW = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
        dout = torch.randn(N, Fo, OH, OW, generator=g)
        flops = 2.0 * N * Fo * OH * OW * C * K * K  # each of forward, input grad, weight grad
        st, pd, dl = [s, s], [p, p], [1, 1]

        # The backward calls are the ones autograd makes for conv2d; the mask picks one gradient.
        def bwd(mask, dout=dout, x=x, w=w, st=st, pd=pd, dl=dl):
            return torch.ops.aten.convolution_backward(dout, x, w, None, st, pd, dl, False, [0, 0], 1, mask)

        yield f"conv_fwd/{name}", (lambda x=x, w=w, b=b, s=s, p=p: F.conv2d(x, w, b, s, p)), flops, "gflops"
        yield f"conv_bwd_input/{name}", (lambda bwd=bwd: bwd([True, False, False])), flops, "gflops"
        yield f"conv_bwd_weight/{name}", (lambda bwd=bwd: bwd([False, True, False])), flops, "gflops"


def bn_cases():
    eps = 1e-5
    for name, shape, G in BN_CASES:
        g = torch.Generator().manual_seed(4)
        x = 0.5 + 2.0 * torch.randn(*shape, generator=g)
        dout = torch.randn(*shape, generator=g)
        C = shape[1]
        gamma = 0.5 + torch.rand(C, generator=g)
        beta = torch.randn(C, generator=g)
        # Bytes as bench_ops.cpp: 8 passes over numel floats (fwd reads x twice and writes y; bwd
        # reads x and dout twice and writes dx).
        nbytes = 8.0 * 4 * x.numel()

        if G == 1:
            def step(x=x, dout=dout, gamma=gamma, beta=beta):
                y, m, inv = torch.ops.aten.native_batch_norm(x, gamma, beta, None, None, True, 0.1, eps)
                return torch.ops.aten.native_batch_norm_backward(
                    dout, x, gamma, None, None, m, inv, True, eps, [True, True, True])
        else:
            # Grouped BN in one PyTorch call: [G*Q, C] -> [Q, G*C] so that each (group, channel) pair
            # is its own BN channel; gamma is repeated G times and dgamma/dbeta summed back over G.
            # The layout copies in and out are part of the cost, as they would be in a PyTorch model.
            Q = shape[0] // G

            def step(x=x, dout=dout, gamma=gamma, beta=beta, G=G, Q=Q, C=C):
                xg = x.view(G, Q, C).transpose(0, 1).reshape(Q, G * C)
                gg, bg = gamma.repeat(G), beta.repeat(G)
                y, m, inv = torch.ops.aten.native_batch_norm(xg, gg, bg, None, None, True, 0.1, eps)
                y = y.view(Q, G, C).transpose(0, 1).reshape(G * Q, C)
                dg = dout.view(G, Q, C).transpose(0, 1).reshape(Q, G * C)
                dx, dgam, dbet = torch.ops.aten.native_batch_norm_backward(
                    dg, xg, gg, None, None, m, inv, True, eps, [True, True, True])
                dx = dx.view(Q, G, C).transpose(0, 1).reshape(G * Q, C)
                return y, dx, dgam.view(G, C).sum(0), dbet.view(G, C).sum(0)
        yield f"bn_train_fwd_bwd/{name}", step, nbytes, "gbps"


def gemm_cases():
    g = torch.Generator().manual_seed(5)
    N, K, Fo = 4096, 512, 512
    x = torch.randn(N, K, generator=g)
    w = 0.05 * torch.randn(Fo, K, generator=g)
    # normad::matmul(x, w, false, true) == x @ w^T == F.linear without bias.
    yield "linear_fwd/n4096_k512_f512", (lambda: F.linear(x, w)), 2.0 * N * K * Fo, "gflops"

    g = torch.Generator().manual_seed(6)
    M, D = 4096, 512
    a = torch.randn(M, D, generator=g)
    b = torch.randn(M, D, generator=g)

    # The formula normad::pairwise_sqdist computes: |a_i|^2 + |b_j|^2 - 2 a_i.b_j, clamped at 0.
    def sqdist():
        d = torch.addmm((b * b).sum(1)[None, :], a, b.t(), alpha=-2.0)
        return d.add_((a * a).sum(1)[:, None]).clamp_(min=0.0)

    yield "pairwise_sqdist/m4096_n4096_d512", sqdist, 2.0 * M * M * D, "gflops"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads(T)")
    ap.add_argument("--filter", default="", help="regex on case names (re.search)")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds of timed repeats per case")
    ap.add_argument("--list", action="store_true", help="print the case names only")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    pat = re.compile(args.filter)
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}", flush=True)
    with torch.no_grad():
        for gen in (conv_cases, bn_cases, gemm_cases):
            for name, fn, work, unit in gen():
                if not pat.search(name):
                    continue
                if args.list:
                    print(name)
                    continue
                ms = time_ms(fn, args.min_time)
                print(f"{name} torch_ms={ms:.4f} {unit}={work / ms / 1e6:.2f}", flush=True)


if __name__ == "__main__":
    main()
