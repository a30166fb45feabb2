#!/usr/bin/python3
# Writes scikit-learn's breast-cancer table (569 rows, 30 features, python3-sklearn) as two CSVs in
# OUTDIR with the tabular one-class split of ntl_dsvdd.md B.5: train.csv = the first half of the
# normal (benign) rows in file order; test.csv = the other half plus every malignant row (anomalies).
# Column "diagnosis" holds benign / malignant. Usage: /usr/bin/python3 scripts/export_breast_cancer.py OUTDIR
import csv
import os
import sys

from sklearn.datasets import load_breast_cancer


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    d = load_breast_cancer()
    names = [n.replace(" ", "_") for n in d.feature_names]
    rows = [(list(x), "malignant" if t == 0 else "benign") for x, t in zip(d.data, d.target)]  # target 0 = malignant
    benign = [r for r in rows if r[1] == "benign"]
    half = len(benign) // 2
    train, test = benign[:half], benign[half:] + [r for r in rows if r[1] == "malignant"]
    for name, part in (("train.csv", train), ("test.csv", test)):
        with open(os.path.join(out, name), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(names + ["diagnosis"])
            for x, label in part:
                w.writerow([repr(float(v)) for v in x] + [label])
    print(f"export_breast_cancer: train {len(train)} benign rows, test {len(test) - len(rows) + len(benign)} benign + "
          f"{len(rows) - len(benign)} malignant rows, in {out}")


if __name__ == "__main__":
    main()
