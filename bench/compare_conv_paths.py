#!/usr/bin/env python3
# Two convolution paths of normad_bench side by side on the same cases: NORMAD_BENCH_CONV=A and =B
# (bench/bench_main.cpp; e.g. channels_last = im2col + OpenBLAS against automatic = the implicit GEMM
# for >= 16 channels), alternating for ROUNDS rounds of 3 repetitions each on the given cores, then
# per case the min and median time of each path and the ratio of the medians (A / B). One binary,
# so the only difference is the path. Test: run it on one small case, e.g.
#   python3 bench/compare_conv_paths.py --filter '^conv_fwd/omni4_n960' --rounds 1
# Usage: python3 bench/compare_conv_paths.py [--bench build/normad_bench] [--filter REGEX]
#        [--rounds 3] [--cores 0] [--min-time 0.2] [--paths channels_last automatic]
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--bench", default="build/normad_bench")
ap.add_argument("--filter", default=r"^conv_(fwd|bwd_weight)/(omni[234]_n960|r18l1_n8|r18l3_n8|wrnl3_n8)")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--cores", default="0", help="taskset -c list")
ap.add_argument("--min-time", default="0.2")
ap.add_argument("--paths", nargs=2, default=["channels_last", "automatic"])
args = ap.parse_args()

times = collections.defaultdict(list)  # (case, path) -> ms
for _ in range(args.rounds):
    for path in args.paths:
        env = dict(os.environ, NORMAD_BENCH_CONV=path)
        run = subprocess.run(["taskset", "-c", args.cores, args.bench, "--benchmark_filter=" + args.filter,
                              "--benchmark_min_time=" + args.min_time, "--benchmark_repetitions=3",
                              "--benchmark_format=json"], capture_output=True, text=True, env=env)
        if run.returncode != 0:
            sys.exit(f"compare_conv_paths: {args.bench} with NORMAD_BENCH_CONV={path} failed: {run.stderr.strip()}")
        for bm in json.loads(run.stdout)["benchmarks"]:
            if bm.get("run_type") != "aggregate":
                times[(bm["run_name"].replace("/real_time", ""), path)].append(bm["real_time"])
a, b = args.paths
for case in sorted({c for c, _ in times}):
    ta, tb = times[(case, a)], times[(case, b)]
    print(f"{case:28s} {a} min {min(ta):8.2f} med {statistics.median(ta):8.2f} | {b} min {min(tb):8.2f} "
          f"med {statistics.median(tb):8.2f} | ratio {statistics.median(ta) / statistics.median(tb):.2f} "
          f"(ms, {len(ta)} timings each)")
