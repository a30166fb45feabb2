#!/usr/bin/env python3
# Runs normad_bench (bench/bench_ops.cpp) and bench/torch_ops.py on the same T cores and prints, per
# case, "<name> normad_ms=<x> torch_ms=<y> speedup=<y/x> torch_blas=<b>" (speedup > 1: normad faster).
# Standard library only; torch_ops.py runs under /usr/bin/python3 (Debian's python3-torch).
#
# Threads: normad has no thread-count environment variable (tensor/parallel.h sets oneTBB's
# global_control from code), but oneTBB's default concurrency follows the CPU affinity mask, and so
# do OpenMP and OpenBLAS defaults. Both programs therefore run under `taskset -c 0-(T-1)`; torch also
# gets torch.set_num_threads(T) and OMP_NUM_THREADS=T. Torch's OpenBLAS pool is sized separately
# (OPENBLAS_NUM_THREADS): for T > 1 torch runs twice, with 1 and with T BLAS threads, and each case
# keeps the faster (torch_blas says which), so the ratio is against torch's best set-up. Each of
# those also runs under every OPENBLAS_CORETYPE that is correct here (bench_common.core_types: Debian's
# OpenBLAS may not know the CPU and fall back to generic kernels); torch_blas then names the core type.
#
# Example: python3 bench/compare_ops.py --threads 2 --filter 'conv_fwd|linear' --min-time 0.5
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

from bench_common import core_types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_bench(path):
    if path:
        return path
    for build in ("build", "build-bench"):
        p = os.path.join(ROOT, build, "normad_bench")
        if os.path.exists(p):
            return p
    sys.exit("compare_ops: no normad_bench in build/ or build-bench/; build it or pass --bench")


def pin(threads):
    """The command prefix restricting a process to cores 0..T-1 (nothing when taskset is missing)."""
    if shutil.which("taskset") is None:
        print("# taskset not found: threads are not pinned", file=sys.stderr)
        return []
    return ["taskset", "-c", f"0-{threads - 1}"]


def run_normad(bench, threads, filt, min_time):
    """{case name: ms or an error string} from Google Benchmark's JSON output."""
    cmd = pin(threads) + [bench, "--benchmark_format=json", f"--benchmark_filter={filt or '.'}",
                          f"--benchmark_min_time={min_time}"]
    print("# " + " ".join(cmd), flush=True)
    res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    report = json.loads(res.stdout)
    ctx = report.get("context", {})
    print(f"# normad: host {ctx.get('host_name')} cpus {ctx.get('num_cpus')} "
          f"tbb_threads {ctx.get('tbb_threads')} eigen_simd {ctx.get('eigen_simd')}", flush=True)
    out = {}
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    for b in report["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        # Google Benchmark appends run options to the name ("/real_time", "/min_time:0.500").
        name = re.sub(r"/(real_time|manual_time|process_time|min_time:[^/]*)", "", b["name"])
        if b.get("error_occurred"):
            out[name] = "error: " + b.get("error_message", "?")
        else:
            out[name] = b["real_time"] * scale[b.get("time_unit", "ns")]
    return out


def run_torch(threads, blas, filt, min_time, core=None):
    """{case name: ms} from torch_ops.py run with OPENBLAS_NUM_THREADS=blas (and OPENBLAS_CORETYPE=core)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas), OMP_NUM_THREADS=str(threads))
    if core:
        env["OPENBLAS_CORETYPE"] = core
    cmd = pin(threads) + ["/usr/bin/python3", os.path.join(ROOT, "bench", "torch_ops.py"),
                          "--threads", str(threads), "--min-time", str(min_time)]
    if filt:
        cmd += ["--filter", filt]
    print(f"# OPENBLAS_NUM_THREADS={blas} OMP_NUM_THREADS={threads}" + (f" OPENBLAS_CORETYPE={core}" if core else "")
          + " " + " ".join(cmd), flush=True)
    res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, env=env)
    out = {}
    for line in res.stdout.splitlines():
        if line.startswith("#"):
            print(line, flush=True)
            continue
        fields = line.split()
        kv = dict(f.split("=", 1) for f in fields[1:])
        out[fields[0]] = float(kv["torch_ms"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="cores 0..T-1 for both programs")
    ap.add_argument("--filter", default="", help="regex on case names, given to both programs")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds of timing per case")
    ap.add_argument("--bench", default="", help="path to normad_bench (default build*/normad_bench)")
    ap.add_argument("--torch-blas", default="both", choices=["1", "T", "both"],
                    help="OPENBLAS_NUM_THREADS for torch: 1, T, or both keeping the faster per case")
    args = ap.parse_args()
    T = args.threads
    if T < 1 or T > os.cpu_count():
        sys.exit(f"compare_ops: --threads must be in 1..{os.cpu_count()}")

    normad = run_normad(find_bench(args.bench), T, args.filter, args.min_time)

    blas_settings = {"1": [1], "T": [T], "both": sorted({1, T})}[args.torch_blas]
    torch_best = {}  # name -> (ms, "blas threads[,core type]")
    for core in core_types():  # OpenBLAS's own kernels, and each correct alternative (bench_common)
        for blas in blas_settings:
            for name, ms in run_torch(T, blas, args.filter, args.min_time, core).items():
                if name not in torch_best or ms < torch_best[name][0]:
                    torch_best[name] = (ms, f"{blas},{core}" if core else str(blas))

    for name, nm in normad.items():
        if isinstance(nm, str):
            print(f"{name} normad_ms=nan ({nm})")
        elif name in torch_best:
            tm, blas = torch_best[name]
            print(f"{name} normad_ms={nm:.4f} torch_ms={tm:.4f} speedup={tm / nm:.2f} torch_blas={blas}")
        else:  # the Eigen GEMM yardsticks have no torch twin: compare them with linear_fwd
            print(f"{name} normad_ms={nm:.4f} (yardstick, no torch case)")
    for name in torch_best:
        if name not in normad:
            print(f"{name} torch_ms={torch_best[name][0]:.4f} (no normad result)")


if __name__ == "__main__":
    main()
