#!/usr/bin/env python3
# Medians over the runs of bench/compare_all.sh: reads its raw output (sections "== SCRIPT threads T
# run R" followed by lines "CASE key=value ..."), prints per script, thread count and case the
# median of each number over the runs, how many runs had the case, and issue 14's verdicts on the
# medians: a training step 2.5x PyTorch or 80% of the FLOP ceiling, batch scoring and Gaussian-AD
# 2.5x, backbones 1.5x torchvision, peak memory no higher than PyTorch's. Every run's value is in
# the raw file above the medians. Test: python3 bench/median_of_runs.py on a hand-made file.
# Usage: python3 bench/median_of_runs.py FILE
import math
import re
import statistics
import sys
from collections import defaultdict

values = defaultdict(lambda: defaultdict(list))  # (script, threads, case) -> key -> [values]
section = None
for line in open(sys.argv[1]):
    if line.startswith("== medians"):
        break  # a file that already holds its medians
    m = re.match(r"== (\S+) threads (\d+) run (\d+)", line)
    if m:
        section = (m.group(1), int(m.group(2)))
        continue
    if section is None or line.startswith(("#", " ")) or "=" not in line:
        continue
    case, *fields = line.split()
    for f in fields:
        key, _, val = f.partition("=")
        if key.endswith("_setup"):
            continue  # a set-up label, not a measurement
        try:
            number = float(val.rstrip("%"))
        except ValueError:
            continue  # text fields (target verdicts) are in the raw runs above
        if not math.isnan(number):
            values[section + (case,)][key].append(number)


def verdicts(case, med):
    out = []
    if "speedup" in med and "torch_ms" in med:  # training steps and scoring vs PyTorch
        bar = med["speedup"] >= 2.5 or ("_step/" in case and med.get("of_ceiling", 0) >= 80)
        out.append("speed=" + ("met" if bar else "NOT_met"))
    elif "speedup" in med:  # Gaussian-AD vs scikit-learn
        out.append("speed=" + ("met" if med["speedup"] >= 2.5 else "NOT_met"))
    if "ratio" in med:  # backbones vs torchvision, images/s
        out.append("speed=" + ("met" if med["ratio"] >= 1.5 else "NOT_met"))
    if "normad_peak_mib" in med and "torch_peak_mib" in med:
        out.append("memory=" + ("met" if med["normad_peak_mib"] <= med["torch_peak_mib"] else "NOT_met"))
    return out


print("\n== medians over the runs")
for (script, threads, case), keys in sorted(values.items()):
    keys = {k: v for k, v in keys.items() if v}
    if not keys:
        continue
    n = max(len(v) for v in keys.values())
    med = {k: statistics.median(v) for k, v in keys.items()}
    parts = [f"{k}={v:.4g}" for k, v in med.items()] + verdicts(case, med)
    print(f"{script} threads {threads} {case} runs={n} " + " ".join(parts))
