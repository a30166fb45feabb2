#!/usr/bin/python3
# Writes one of scikit-learn's bundled classification tables (python3-sklearn; files shipped with the
# package, no network) as a CSV: one column per feature, in scikit-learn's order, then a column
# "class" holding the target as an integer. Rows in scikit-learn's order, values as Python repr.
# For `normad zeroshot --csv OUT.csv --label class` (classes as tasks; docs/acr_augmentation.md,
# "Tables"). Bundled tables: digits (1797 rows, 64 features, 10 classes), wine (178, 13, 3),
# iris (150, 4, 3), breast_cancer (569, 30, 2); only digits has enough classes to hold out some.
# Usage: /usr/bin/python3 scripts/export_sklearn_table.py NAME OUT.csv
import csv
import os
import sys

from sklearn import datasets

LOADERS = {
    "digits": datasets.load_digits,
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
    "breast_cancer": datasets.load_breast_cancer,
}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in LOADERS:
        sys.exit(f"usage: {sys.argv[0]} NAME OUT.csv   (NAME: {', '.join(LOADERS)})")
    name, out = sys.argv[1], sys.argv[2]
    d = LOADERS[name]()
    features = [str(n).replace(" ", "_") for n in d.feature_names]
    if "class" in features:
        sys.exit(f"{name}: a feature is already called 'class'")
    tmp = out + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(features + ["class"])
        for x, t in zip(d.data, d.target):
            w.writerow([repr(float(v)) for v in x] + [int(t)])
    os.replace(tmp, out)
    counts = {}
    for t in d.target:
        counts[int(t)] = counts.get(int(t), 0) + 1
    print(f"export_sklearn_table: {name}, {len(d.target)} rows, {len(features)} features, {len(counts)} classes "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}) -> {out}")


if __name__ == "__main__":
    main()
