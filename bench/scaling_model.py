#!/usr/bin/python3
# A model of data-parallel time per step versus ranks (docs/distributed.md), from figures measured
# by bench/bench_ranks.sh on one machine. Standard library only.
#
# ACR meta-training iteration of T tasks on R ranks:
#   t(R) = s + ceil(T / R) c + a(R)
#   c     compute per task (forward + backward of its rows), measured;
#   s     the work every rank repeats each iteration (drawing and building all T tasks, the Adam
#         step, packing and merging the buffers), measured;
#   a(R)  ring all-reduce of B bytes: 2 (R - 1) / R * B / bandwidth + 2 (R - 1) * latency.
# From t(1) = s + T c and the 2-rank time minus rank 0's time in the all-reduce (which includes
# waiting for the other rank), t(2) - a2 = s + (T / 2) c:  c = 2 (t(1) - t(2) + a2) / T, s = t(1) - T c.
# Gaussian-AD fit of N images on R ranks:
#   t(R) = ceil(N / R) e + f + a(R),  e the extraction per image, f the fit every rank repeats
#   (Ledoit-Wolf, whitening), B = 8 (p^2 + 2p + 2) bytes per level.
# Usage: bench/scaling_model.py --t1 S --t2 S --a2 S --tasks T --bytes B [--fit-t1 S --fit-t2 S
#        --images N --fit-bytes B [--model-images N2]]
import argparse
import math

LINKS = {  # bandwidth (bytes/s) and per-step latency (s) of a ring all-reduce
    "100 Gb/s (InfiniBand / RoCE, MPI)": (12.5e9, 5e-6),
    "NVLink-class (NCCL, ~300 GB/s bus)": (300e9, 10e-6),
}
RANKS = [1, 2, 4, 8, 16, 32, 64]


def ring(bytes_, ranks, bandwidth, latency):
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * bytes_ / bandwidth + 2 * (ranks - 1) * latency


def table(title, unit_cost, serial, units, bytes_, unit_name):
    print(f"\n{title}")
    print(f"  per {unit_name} {unit_cost * 1e3:.2f} ms, repeated on every rank {serial * 1e3:.1f} ms, "
          f"all-reduced {bytes_ / 1e6:.2f} MB")
    for link, (bw, lat) in LINKS.items():
        print(f"  {link}:")
        print(f"    {'ranks':>5} {unit_name + 's/rank':>12} {'compute ms':>11} {'all-reduce ms':>14} {'total ms':>9} "
              f"{'speed-up':>9} {'efficiency':>10}")
        t1 = serial + units * unit_cost
        for r in RANKS:
            share = math.ceil(units / r)
            a = ring(bytes_, r, bw, lat)
            t = serial + share * unit_cost + a
            print(f"    {r:>5} {share:>12} {1e3 * (serial + share * unit_cost):>11.2f} {1e3 * a:>14.3f} {1e3 * t:>9.2f} "
                  f"{t1 / t:>9.2f} {100 * t1 / (r * t):>9.0f}%")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--t1", type=float, required=True, help="s per iteration, 1 rank")
    p.add_argument("--t2", type=float, required=True, help="s per iteration, 2 ranks")
    p.add_argument("--a2", type=float, required=True, help="s per iteration in the all-reduce, rank 0 of 2")
    p.add_argument("--tasks", type=int, default=32)
    p.add_argument("--bytes", type=float, required=True, help="bytes all-reduced per iteration")
    p.add_argument("--fit-t1", type=float)
    p.add_argument("--fit-t2", type=float)
    p.add_argument("--images", type=int)
    p.add_argument("--fit-bytes", type=float)
    p.add_argument("--model-images", type=int, help="also the model for this many images (same e, f)")
    a = p.parse_args()
    c = 2 * (a.t1 - a.t2 + a.a2) / a.tasks
    s = max(0.0, a.t1 - a.tasks * c)
    table(f"ACR meta-training iteration, T = {a.tasks} tasks (measured: t(1) = {a.t1:.3f} s, t(2) = {a.t2:.3f} s)",
          c, s, a.tasks, a.bytes, "task")
    if a.fit_t1 and a.fit_t2 and a.images:
        # t(1) = N e + f, t(2) = N/2 e + f (+ a negligible all-reduce on shared memory)
        e = 2 * (a.fit_t1 - a.fit_t2) / a.images
        f = max(0.0, a.fit_t1 - a.images * e)
        table(f"Gaussian-AD fit, N = {a.images} images (measured: t(1) = {a.fit_t1:.2f} s, t(2) = {a.fit_t2:.2f} s)",
              e, f, a.images, a.fit_bytes or 0.0, "image")
        if a.model_images:
            table(f"Gaussian-AD fit, N = {a.model_images} images (modelled from the same per-image and repeated costs)",
                  e, f, a.model_images, a.fit_bytes or 0.0, "image")


if __name__ == "__main__":
    main()
