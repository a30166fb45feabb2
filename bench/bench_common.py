# Shared by the bench/compare_*.py scripts: pinning to T cores, running normad's benchmark binary and
# a Python reference script under PyTorch's / NumPy's fastest threading set-up on those cores.
import argparse
import json
import os
import subprocess

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


def run_python(t, script, args, blas_env="OPENBLAS_NUM_THREADS", omp=None):
    """Runs `script` (lines "name value") on t cores with the BLAS pool at 1 and at t threads.
    Returns [(blas threads, {name: value})] so the caller keeps the best set-up per case."""
    runs = []
    for blas in sorted({1, t}):
        env = dict(os.environ, **{blas_env: str(blas), "OMP_NUM_THREADS": str(omp or blas)})
        out = subprocess.run(["taskset", "-c", cpus(t), "/usr/bin/python3", "-c", script, *map(str, args)],
                             capture_output=True, text=True, check=True, env=env).stdout
        runs.append((blas, {ln.split()[0]: float(ln.split()[1]) for ln in out.splitlines() if ln.strip()}))
    return runs
