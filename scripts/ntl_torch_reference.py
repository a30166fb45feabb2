#!/usr/bin/python3
# An independent PyTorch NeuTraL-AD (ntl_dsvdd.md B.1-B.3: bias-free encoder 5 layers h = z = 60,
# K = 11 transformations of 2 bias-free layers, DCL with tau 0.1; Adam lr 1e-3, weight decay 1e-5,
# batch 128, 200 epochs) on the split written by scripts/export_breast_cancer.py, with normad's
# preprocessing (standardise with the training rows' statistics). Prints the test AUROC per
# transformation type for seeds 0, 1, 2, to compare with `normad train --model ntl` on the same files.
# Usage: cd DIR_WITH_train.csv_test.csv && /usr/bin/python3 scripts/ntl_torch_reference.py
import csv
import numpy as np
import torch
from sklearn.metrics import roc_auc_score

torch.set_num_threads(1)
def load(p):
    r = list(csv.reader(open(p)))
    x = np.array([[float(v) for v in row[:-1]] for row in r[1:]], dtype=np.float32)
    y = np.array([row[-1] == "malignant" for row in r[1:]], dtype=int)
    return x, y
xtr, _ = load("train.csv"); xte, yte = load("test.csv")
mu, sd = xtr.mean(0), xtr.std(0); sd[sd == 0] = 1
xtr, xte = torch.tensor((xtr - mu) / sd), torch.tensor((xte - mu) / sd)
D, K, H, Z = 30, 11, 60, 60
def run(ttype, seed):
    torch.manual_seed(seed)
    trans = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(D, D, bias=False), torch.nn.ReLU(), torch.nn.Linear(D, D, bias=False)) for _ in range(K)])
    layers = []
    for i in range(4): layers += [torch.nn.Linear(D if i == 0 else H, H, bias=False), torch.nn.ReLU()]
    enc = torch.nn.Sequential(*layers, torch.nn.Linear(H, Z, bias=False))
    def score(x):
        views = [x]
        for m in trans:
            t = m(x)
            views.append(x + t if ttype == "residual" else torch.sigmoid(t) * x if ttype == "mul" else t)
        z = enc(torch.cat(views, 0)).reshape(K + 1, x.shape[0], Z).transpose(0, 1)
        u = torch.nn.functional.normalize(z, dim=-1)
        sim = torch.exp(u @ u.transpose(1, 2) / 0.1)
        mask = 1 - torch.eye(K + 1)
        den = (sim * mask).sum(-1)[:, 1:]
        pos = sim[:, 1:, 0]
        return (torch.log(den) - torch.log(pos)).sum(1) / (K * np.log(K))
    params = list(trans.parameters()) + list(enc.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-5)
    for e in range(200):
        perm = torch.randperm(xtr.shape[0])
        for s in range(0, xtr.shape[0], 128):
            loss = score(xtr[perm[s:s + 128]]).mean()
            opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        return roc_auc_score(yte, score(xte).numpy())
for t in ["forward", "mul", "residual"]:
    print(t, [round(run(t, s), 3) for s in range(3)])
