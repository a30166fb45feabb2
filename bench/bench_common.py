# Shared by the bench/compare_*.py scripts: pinning to T cores, running normad's benchmark binary and
# a Python reference script under PyTorch's / NumPy's fastest threading set-up on those cores.
# OpenBLAS (PyTorch's Linear and NumPy/scikit-learn here) picks its kernels by CPU model and falls
# back to generic ones on a model it does not know (Debian's 0.3.21 on Sapphire Rapids: "Prescott",
# 40 GFLOP/s sgemm instead of 183). So every comparison prints the CPU model and OpenBLAS's core, and
# also runs the reference under each OPENBLAS_CORETYPE in CORE_CANDIDATES that is correct here (a
# float32 product checked against float64), keeping the fastest per case, as for thread counts.
import argparse
import functools
import itertools
import json
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arg_parser(description=None):
    """--threads T (default: all cores) and --bench (normad's benchmark binary), shared by the scripts."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "normad_bench"))
    return ap


def cpus(t):
    """taskset CPU list for the first t cores."""
    return "0" if t == 1 else f"0-{t - 1}"


def run_normad_all(t, bench, pattern, extra=(), env=None):
    """{benchmark name: its JSON record (times, counters)} for the cases of `bench` matching `pattern`,
    on t cores."""
    cmd = ["taskset", "-c", cpus(t), bench, f"--benchmark_filter={pattern}", "--benchmark_format=json", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env=dict(os.environ, **(env or {}))).stdout
    return {b["name"].split("/min_time")[0].replace("/real_time", ""): b for b in json.loads(out)["benchmarks"]}


def run_normad(t, bench, pattern, key="real_time", extra=(), env=None):
    """{benchmark name: value of `key`} for the cases of `bench` matching `pattern`, on t cores."""
    # a case that failed or skipped (no GPU: "SKIPPED: ...") has real_time 0 in the JSON: left out
    return {name: b[key] for name, b in run_normad_all(t, bench, pattern, extra, env).items()
            if key in b and not b.get("error_occurred")}


# OpenBLAS kernel sets tried beside the one it detects: AVX-512 and AVX2.
CORE_CANDIDATES = ("SkylakeX", "Haswell")

_CORE_CHECK = r"""
import numpy as np
rng = np.random.default_rng(0)
a, b = rng.standard_normal((300, 200)).astype(np.float32), rng.standard_normal((200, 250)).astype(np.float32)
ref = a.astype(np.float64) @ b.astype(np.float64)
err = np.abs(a @ b - ref).max() / np.abs(ref).max()
print("ok" if err < 1e-5 else "wrong %g" % err)
"""


def cpu_model():
    """The CPU's model name, family, model and stepping (/proc/cpuinfo), and whether it has AVX-512, for
    the header of every comparison. A virtual machine's name alone can hide the generation: two of
    this project's VMs both say "AMD EPYC", one a Zen 5 (family 26), the other a Zen 4 (family 25,
    model 17), whose AVX-512 multiply-adds run at half the rate and where PyTorch ran 1.5-2.5x faster."""
    fields = {}
    try:
        for line in open("/proc/cpuinfo"):
            if ":" in line:
                key, value = (part.strip() for part in line.split(":", 1))
                fields.setdefault(key, value)
            if not line.strip() and fields:
                break  # the first processor's block
    except OSError:
        pass
    if "model name" not in fields:
        return "unknown CPU"
    ident = ", ".join(f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields)
    simd = "AVX-512" if "avx512f" in fields.get("flags", "").split() else "no AVX-512"
    return f"{fields['model name']} ({ident}; {simd})"


def openblas_core(env=None):
    """The kernel set OpenBLAS uses under `env` (its OPENBLAS_VERBOSE=2 line "Core: X"), or None when
    the probe (a float32 product checked against float64) crashes or is wrong."""
    env = dict(os.environ, **(env or {}), OPENBLAS_VERBOSE="2")
    p = subprocess.run(["/usr/bin/python3", "-c", _CORE_CHECK], capture_output=True, text=True, env=env)
    if p.returncode != 0 or p.stdout.strip() != "ok":
        return None
    for line in p.stderr.splitlines() + p.stdout.splitlines():
        if line.startswith("Core:"):
            return line.split(":", 1)[1].strip()
    return None


@functools.lru_cache(maxsize=None)
def core_types():
    """[None (OpenBLAS's own pick)] + the CORE_CANDIDATES that run and give a correct float32 product
    here and differ from the detected core; prints the machine line once."""
    detected = openblas_core()
    kept = [None]
    for c in CORE_CANDIDATES:
        if c == detected:
            continue
        # kept when OpenBLAS really switched to it (its "Core:" line) and the product is right; an
        # illegal instruction, a wrong result or a build without runtime core selection drops it
        if openblas_core({"OPENBLAS_CORETYPE": c}) == c:
            kept.append(c)
    print(f"# machine: {cpu_model()}; OpenBLAS core {detected or 'unknown'}; also trying "
          f"OPENBLAS_CORETYPE={','.join(k for k in kept if k) or 'none'}", flush=True)
    return tuple(kept)


def run_python(t, script, args, blas_env="OPENBLAS_NUM_THREADS", omp=None):
    """Runs `script` (lines "name value") on t cores with the BLAS pool at 1 and at t threads, under
    OpenBLAS's own core and each correct OPENBLAS_CORETYPE candidate (core_types()), with OpenMP's
    default wait policy and with OMP_WAIT_POLICY=PASSIVE (idle threads sleep instead of spinning).
    Returns [(set-up, {name: value})], set-up "blas threads[,core type][,OMP_WAIT_POLICY=PASSIVE]",
    so the caller keeps the best set-up per case."""
    runs = []
    for core, blas, wait in itertools.product(core_types(), sorted({1, t}), (None, "PASSIVE")):
        env = dict(os.environ, **{blas_env: str(blas), "OMP_NUM_THREADS": str(omp or blas)})
        if core:
            env["OPENBLAS_CORETYPE"] = core
        if wait:
            env["OMP_WAIT_POLICY"] = wait
        p = subprocess.run(["taskset", "-c", cpus(t), "/usr/bin/python3", "-c", script, *map(str, args)],
                           capture_output=True, text=True, env=env)
        if p.returncode != 0:
            if core is None:  # OpenBLAS's own set-up must run
                raise subprocess.CalledProcessError(p.returncode, "python3", p.stdout, p.stderr)
            print(f"# OPENBLAS_CORETYPE={core} failed in the script, dropped", flush=True)
            continue
        label = ",".join([str(blas)] + [x for x in (core, wait and f"OMP_WAIT_POLICY={wait}") if x])
        runs.append((label, {ln.split()[0]: float(ln.split()[1]) for ln in p.stdout.splitlines() if ln.strip()}))
    return runs


def peak_rss_mb(cmd, env=None):
    """Peak resident memory (MiB, the kernel's ru_maxrss, what `/usr/bin/time -v` reports) of the process
    `cmd`, run to completion; raises with its stderr when it fails."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise subprocess.CalledProcessError(p.returncode, cmd, None, err.read().decode(errors="replace"))
    return usage.ru_maxrss / 1024


def run_torch_ceiling(t):
    """PyTorch's best 2048^3 SGEMM rate (GFLOP/s) over its set-ups on t cores."""
    return max(res.get("sgemm_ceiling", 0.0) for _, res in run_python(t, CEILING_SCRIPT, [t], omp=t))


# The FLOP ceiling on these cores as PyTorch reaches it: torch.mm on 2048^3, best of 5, GFLOP/s.
CEILING_SCRIPT = r'''
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
torch.mm(a, b)
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter(); torch.mm(a, b); best = min(best, time.perf_counter() - t0)
print("sgemm_ceiling", 2 * 2048 ** 3 / best / 1e9)
'''


def flop_ceiling(t, bench):
    """(ceiling, normad's, PyTorch's) in GFLOP/s on t cores: the machine's FLOP ceiling as issue 14
    defines it, the best large SGEMM either side reaches there (normad's matmul and raw Eigen on
    4096 x 512 x 512, torch.mm on 2048^3 in its fastest set-up)."""
    gemm = run_normad(t, bench, "^(gemm_eigen_tbb|linear_fwd)/", key="FLOP")
    normad_ceiling = max(gemm.values(), default=0) / 1e9
    torch_ceiling = run_torch_ceiling(t)
    return max(normad_ceiling, torch_ceiling), normad_ceiling, torch_ceiling
