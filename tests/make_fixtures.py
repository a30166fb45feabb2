#!/usr/bin/python3
# PyTorch parity fixtures for tests/test_parity.cpp (and tests/test_images.cpp: family "resize",
# with PIL and torchvision): one safetensors file per op family in OUTDIR.
# Math: each case stores inputs, parameters, out = op(inputs) and the gradients of
# loss = sum(out * wt) (wt a stored random tensor, so every output element matters).
# Tested by tests/test_parity.cpp; run by ctest as `/usr/bin/python3 tests/make_fixtures.py OUTDIR`.
#
# Inputs are float32 randn; outputs and gradients are computed in float64 from those float32
# values and then rounded to float32, so the reference carries no float32 accumulation error of
# its own (the optimiser cases run in float32, as torch.optim does). Deterministic: one seed per
# file, one thread. Shapes: N batch, C channels, H, W spatial, G row groups.
# The safetensors writer is hand-made (struct + json) so no package beyond torch is needed.
import json
import os
import struct
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    print("make_fixtures: python3-torch not available, parity tests are skipped")
    # 77: ctest reports this setup test as skipped (SKIP_RETURN_CODE); under CI=true it fails.
    sys.exit(1 if os.environ.get("CI") == "true" else 77)


# ---- writer ----------------------------------------------------------------------------------
def save(path, tensors, meta=None):
    """safetensors: u64 LE header length, JSON header (keys sorted), packed little-endian F32."""
    header, blobs, offset = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous().cpu()
        raw = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    js = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)  # pad so the data starts 8-byte aligned (spaces are allowed)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)  # no half-written fixture if interrupted


def randn(*shape, scale=1.0, shift=0.0):
    return torch.randn(*shape) * scale + shift  # float32


def leaf(t):
    """float64 leaf requiring grad, built from a float32 tensor."""
    return t.detach().double().requires_grad_(True)


def run_case(fx, prefix, fn, inputs):
    """inputs: {name: float32 tensor}; fn(**float64 leaves) -> out.
    Stores inputs, out, wt and d<name> for every input under prefix."""
    leaves = {k: leaf(v) for k, v in inputs.items()}
    out = fn(**leaves)
    wt = torch.randn(*out.shape)
    (out * wt.double()).sum().backward()
    for k, v in inputs.items():
        fx[f"{prefix}.{k}"] = v
        fx[f"{prefix}.d{k}"] = leaves[k].grad
    fx[f"{prefix}.out"] = out
    fx[f"{prefix}.wt"] = wt
    return out


# ---- conv2d ----------------------------------------------------------------------------------
def make_conv(fx):
    # (x shape, w shape, stride, pad, dilation, groups, bias)
    cases = [
        ([2, 3, 7, 8], [4, 3, 3, 3], (1, 1), (0, 0), (1, 1), 1, True),   # c0 plain 3x3
        ([2, 3, 9, 8], [5, 3, 3, 3], (2, 2), (1, 1), (1, 1), 1, True),   # c1 stride 2 pad 1
        ([2, 3, 9, 10], [4, 3, 3, 3], (1, 1), (1, 1), (2, 2), 1, True),  # c2 dilation 2
        ([2, 4, 6, 7], [6, 2, 3, 3], (1, 1), (1, 1), (1, 1), 2, True),   # c3 groups 2
        ([2, 4, 6, 6], [4, 1, 3, 3], (1, 1), (1, 1), (1, 1), 4, True),   # c4 depthwise
        ([1, 3, 8, 8], [4, 3, 5, 5], (1, 1), (2, 2), (1, 1), 1, False),  # c5 5x5 pad 2, no bias
        ([2, 2, 7, 9], [3, 2, 2, 3], (2, 1), (0, 1), (1, 1), 1, True),   # c6 2x3 kernel, mixed args
    ]
    for i, (xs, ws, st, pd, dl, gr, has_b) in enumerate(cases):
        inputs = {"x": randn(*xs), "w": randn(*ws, scale=0.5)}
        if has_b:
            inputs["b"] = randn(ws[0])

        def fn(x, w, b=None):
            return F.conv2d(x, w, b, stride=st, padding=pd, dilation=dl, groups=gr)

        run_case(fx, f"c{i}", fn, inputs)
        fx[f"c{i}.args"] = torch.tensor([st[0], st[1], pd[0], pd[1], dl[0], dl[1], gr,
                                         1 if has_b else 0], dtype=torch.float32)


# ---- batch norm ------------------------------------------------------------------------------
def make_batchnorm(fx):
    mom = 0.1

    def train_case(prefix, xshape, eps, affine=True, groups=1):
        C = xshape[1]
        inputs = {"x": randn(*xshape, scale=2.0, shift=0.5)}
        if affine:
            inputs["gamma"] = randn(C, scale=0.3, shift=1.0)
            inputs["beta"] = randn(C, scale=0.3)
        rm0, rv0 = randn(C, scale=0.2), torch.rand(C) + 0.5

        def fn(x, gamma=None, beta=None):
            # per-group loop: each group normalised with its own batch statistics
            outs = [F.batch_norm(xg, None, None, gamma, beta, training=True, eps=eps)
                    for xg in x.chunk(groups, 0)]
            return torch.cat(outs, 0)

        run_case(fx, prefix, fn, inputs)
        # torch's own running-stat updates: one per group, in group order (a per-task loop)
        rm, rv = rm0.double().clone(), rv0.double().clone()
        for xg in inputs["x"].double().chunk(groups, 0):
            F.batch_norm(xg, rm, rv, None, None, training=True, momentum=mom, eps=eps)
        fx[f"{prefix}.rm0"], fx[f"{prefix}.rv0"] = rm0, rv0
        fx[f"{prefix}.rm1"], fx[f"{prefix}.rv1"] = rm, rv
        fx[f"{prefix}.args"] = torch.tensor([eps, mom, groups, 1 if affine else 0])

    def eval_case(prefix, xshape, eps):
        C = xshape[1]
        inputs = {"x": randn(*xshape, scale=2.0, shift=0.5),
                  "gamma": randn(C, scale=0.3, shift=1.0), "beta": randn(C, scale=0.3)}
        rm, rv = randn(C, scale=0.5), torch.rand(C) + 0.5

        def fn(x, gamma, beta):
            return F.batch_norm(x, rm.double(), rv.double(), gamma, beta, training=False, eps=eps)

        run_case(fx, prefix, fn, inputs)
        fx[f"{prefix}.rm"], fx[f"{prefix}.rv"] = rm, rv
        fx[f"{prefix}.args"] = torch.tensor([eps, 0.0, 1, 1])

    train_case("bn1d", [16, 5], 1e-5)
    train_case("bn2d", [4, 3, 5, 6], 1e-5)
    eval_case("eval1d", [6, 5], 1e-5)
    eval_case("eval2d", [2, 3, 4, 4], 1e-5)
    train_case("grp1d", [32, 6], 1e-5, groups=4)           # G=4 groups of 8 rows
    train_case("grp2d", [8, 3, 4, 4], 1e-5, groups=4)      # G=4 groups of 2 images
    train_case("noaff1d", [16, 8], 1e-4, affine=False)    # Deep SVDD: affine=False, eps=1e-4
    train_case("noaff2d", [4, 3, 5, 5], 1e-4, affine=False)


# ---- linear ----------------------------------------------------------------------------------
def make_linear(fx):
    inputs = {"x": randn(7, 5), "W": randn(3, 5, scale=0.5), "b": randn(3)}
    run_case(fx, "lin", lambda x, W, b: F.linear(x, W, b), inputs)


# ---- pooling ---------------------------------------------------------------------------------
def make_pool(fx):
    # (prefix, x shape, kernel, stride, pad, ceil_mode, count_include_pad)
    maxc = [("mp0", [2, 3, 6, 8], 2, 2, 0, False),
            ("mp1", [2, 3, 7, 7], 3, 2, 1, False),
            ("mp2", [2, 2, 7, 5], 2, 2, 0, True)]   # ceil_mode: partial last window
    for p, xs, k, s, pd, ceil in maxc:
        run_case(fx, p, lambda x: F.max_pool2d(x, k, s, pd, ceil_mode=ceil), {"x": randn(*xs)})
        fx[f"{p}.args"] = torch.tensor([k, k, s, s, pd, pd, ceil, 1], dtype=torch.float32)
    avgc = [("ap0", [2, 3, 7, 7], 3, 2, 1, False, True),
            ("ap1", [2, 3, 7, 7], 3, 2, 1, False, False),
            ("ap2", [2, 2, 7, 5], 2, 2, 0, True, True)]  # ceil_mode: divisor clipped to input
    for p, xs, k, s, pd, ceil, cip in avgc:
        run_case(fx, p, lambda x: F.avg_pool2d(x, k, s, pd, ceil_mode=ceil, count_include_pad=cip),
                 {"x": randn(*xs)})
        fx[f"{p}.args"] = torch.tensor([k, k, s, s, pd, pd, ceil, cip], dtype=torch.float32)
    # global average pooling = adaptive_avg_pool2d(x, 1), flattened to [N, C]
    run_case(fx, "gap", lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1), {"x": randn(2, 3, 5, 6)})
    # adaptive to (2, 3) on a 6x9 input: windows 3x3, stride 3 (the test uses avg_pool2d)
    run_case(fx, "aap", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), {"x": randn(2, 3, 6, 9)})
    fx["aap.args"] = torch.tensor([3, 3, 3, 3, 0, 0, 0, 1], dtype=torch.float32)


# ---- distances, normalisation, logsumexp ---------------------------------------------------------
def make_distance(fx):
    a, b = randn(9, 4), randn(6, 4)
    wt = torch.randn(9, 6)
    # value through cdist (float64), gradient through the explicit difference form (float64)
    out = torch.cdist(a.double(), b.double()) ** 2
    la, lb = leaf(a), leaf(b)
    (((la[:, None] - lb[None]) ** 2).sum(-1) * wt.double()).sum().backward()
    fx.update({"sq.a": a, "sq.b": b, "sq.out": out, "sq.wt": wt, "sq.da": la.grad, "sq.db": lb.grad})
    run_case(fx, "l2", lambda x: F.normalize(x, p=2, dim=1), {"x": randn(7, 5)})
    run_case(fx, "lse", lambda x: torch.logsumexp(x, 1), {"x": randn(6, 7, scale=3.0)})


# ---- optimisers (float32, as torch.optim runs) ---------------------------------------------------
def make_optim(fx):
    def run(prefix, make_opt, hp):
        p0 = randn(4, 3)
        p = p0.clone().requires_grad_(True)
        opt = make_opt([p])
        fx[f"{prefix}.p0"] = p0
        for k in (1, 2, 3):
            g = randn(4, 3)
            p.grad = g.clone()
            opt.step()
            fx[f"{prefix}.g{k}"] = g
            fx[f"{prefix}.p{k}"] = p.detach().clone()
        fx[f"{prefix}.hparams"] = torch.tensor(hp, dtype=torch.float32)

    # hparams: lr, beta1, beta2, eps, weight_decay
    run("adam", lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
        [1e-2, 0.9, 0.999, 1e-8, 1e-3])
    # hparams: lr, momentum, weight_decay
    run("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3),
        [0.1, 0.9, 1e-3])


# ---- ACR-DSVDD golden iteration (acr.md §3, §4.1, §4.3, §7.1) ------------------------------------
class OmniglotNet(torch.nn.Module):
    """acr.md §7.1 with normad's parameter names (models/omniglot_net.cpp)."""

    def __init__(self):
        super().__init__()
        for i in range(4):
            setattr(self, f"conv{i}", torch.nn.Conv2d(1 if i == 0 else 64, 64, 3, 2, 1))
            setattr(self, f"bn{i}", torch.nn.BatchNorm2d(64))
        self.head = torch.nn.Linear(64, 32)
        self.bn_out = torch.nn.BatchNorm1d(32)

    def forward(self, x):
        for i in range(4):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        return self.bn_out(self.head(x.mean((2, 3))))


def make_acr(fx):
    """One ACR-DSVDD iteration: 4 tasks x 30 rows, each task its own forward pass (the reference's
    loop), loss = mean over tasks of (1/Q)[sum_normal d + sum_anomalous 1/d]. Stores the weights
    (state_dict names), c, x, y, the loss, every parameter's gradient ("grad.<name>") and the
    running statistics after the 4 passes ("after.<name>")."""
    T, Q = 4, 30
    net = OmniglotNet().double()
    for m in net.modules():  # acr.md §8, so values are in the method's real range
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            torch.nn.init.uniform_(m.weight, 0, 1)
    torch.nn.init.normal_(net.head.weight, 0, 1)
    torch.nn.init.zeros_(net.head.bias)
    # Round the weights to float32 first, so both sides start from identical values.
    with torch.no_grad():
        for t in net.state_dict().values():
            t.copy_(t.float().double())
    c = torch.randn(32).double().requires_grad_(True)
    x = torch.rand(T * Q, 1, 28, 28)
    y = torch.cat([torch.randperm(Q) % 2 for _ in range(T)]).float()  # 15 + 15 per task, shuffled
    for name, t in net.state_dict().items():
        fx[name] = t.float()
    fx["c"], fx["x"], fx["y"] = c.detach().float(), x, y
    net.train()
    xd = x.double()
    losses = []
    for k in range(T):
        z = net(xd[k * Q:(k + 1) * Q])
        d = ((z - c) ** 2).sum(1)
        yk = y[k * Q:(k + 1) * Q].double()
        losses.append(((1 - yk) * d + yk / d).mean())
    loss = torch.stack(losses).mean()
    loss.backward()
    fx["loss"] = loss.detach().float().reshape(1)
    for name, p in net.named_parameters():
        fx["grad." + name] = p.grad.float()
    fx["grad.c"] = c.grad.float()
    for name, t in net.state_dict().items():
        if "running" in name:
            fx["after." + name] = t.float()


def make_acr_ntl(fx):
    """One ACR-NTL iteration (acr.md 4.2, 4.3, 7.4) on a small table: T tasks of Q rows, each task
    its own encoder pass over its K+1 views (the reference loop). Names as normad's TabNtl."""
    D, K, H, Z, T, Q, tau = 10, 5, 16, 8, 3, 8, 0.1
    trans = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), torch.nn.Linear(H, H),
                                                     torch.nn.ReLU(), torch.nn.Linear(H, D)) for _ in range(K)])
    layers = []
    for i in range(3):
        layers += [torch.nn.Linear(D if i == 0 else H, H), torch.nn.BatchNorm1d(H), torch.nn.ReLU()]
    enc = torch.nn.Sequential(*layers, torch.nn.Linear(H, Z))
    net = torch.nn.ModuleDict({"trans": trans, "enc": enc}).double()
    with torch.no_grad():
        for t in net.state_dict().values():
            t.copy_(t.float().double())
    x = torch.randn(T * Q, D)
    y = torch.cat([torch.randperm(Q) % 2 for _ in range(T)]).float()
    for name, t in net.state_dict().items():
        fx[name] = t.float()
    fx["x"], fx["y"] = x, y
    net.train()
    losses = []
    for k in range(T):
        xk = x[k * Q:(k + 1) * Q].double()
        views = [xk] + [m(xk) for m in trans]  # forward type
        z = enc(torch.cat(views, 0)).reshape(K + 1, Q, Z).transpose(0, 1)  # [Q, V, Z]
        u = torch.nn.functional.normalize(z, dim=-1)
        h = torch.exp(u @ u.transpose(1, 2) / tau)
        den = (h * (1 - torch.eye(K + 1, dtype=h.dtype))).sum(-1)[:, 1:]
        pos = h[:, 1:, 0]
        scale = K * np.log(K)
        ln = (torch.log(den) - torch.log(pos)).sum(1) / scale
        la = (-torch.log(1 - pos / den)).sum(1) / scale
        yk = y[k * Q:(k + 1) * Q].double()
        losses.append(((1 - yk) * ln + yk * la).mean())
    loss = torch.stack(losses).mean()
    loss.backward()
    fx["loss"] = loss.detach().float().reshape(1)
    for name, p in net.named_parameters():
        fx["grad." + name] = p.grad.float()
    for name, t in net.state_dict().items():
        if "running" in name:
            fx["after." + name] = t.float()


# ---- transposed convolution and nearest upsampling --------------------------------------------
def make_conv_transpose(fx):
    # (x shape, w shape [in, out/groups, kh, kw], stride, pad, output_padding, groups, bias)
    cases = [
        ([2, 3, 5, 6], [3, 4, 3, 3], 1, 1, 0, 1, True),    # t0 plain
        ([2, 8, 4, 4], [8, 5, 5, 5], 1, 2, 0, 1, False),   # t1 A.5: 5x5 pad 2, no bias
        ([2, 4, 7, 7], [4, 3, 5, 5], 1, 3, 0, 1, False),   # t2 A.5: pad 3 shrinks 14 -> 14 - 2
        ([2, 4, 4, 5], [4, 2, 3, 3], 2, 1, 1, 2, True),    # t3 stride 2, output padding, groups 2
    ]
    for i, (xs, ws, st, pd, op, gr, has_b) in enumerate(cases):
        inputs = {"x": randn(*xs), "w": randn(*ws, scale=0.5)}
        if has_b:
            inputs["b"] = randn(ws[1] * gr)

        def fn(x, w, b=None):
            return F.conv_transpose2d(x, w, b, stride=st, padding=pd, output_padding=op, groups=gr)

        run_case(fx, f"t{i}", fn, inputs)
        fx[f"t{i}.args"] = torch.tensor([st, pd, op, gr, 1 if has_b else 0], dtype=torch.float32)
    for i, (xs, sc) in enumerate([([2, 3, 4, 5], 2), ([1, 2, 3, 3], 3)]):
        run_case(fx, f"up{i}", lambda x: F.interpolate(x, scale_factor=sc), {"x": randn(*xs)})
        fx[f"up{i}.args"] = torch.tensor([sc], dtype=torch.float32)


# ---- Deep SVDD autoencoder golden step (ntl_dsvdd.md A.4, A.5; Deep SAD's fmnist_LeNet.py) --------
class FmnistEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 16, 5, bias=False, padding=2)
        self.bn2d1 = torch.nn.BatchNorm2d(16, eps=1e-04, affine=False)
        self.conv2 = torch.nn.Conv2d(16, 32, 5, bias=False, padding=2)
        self.bn2d2 = torch.nn.BatchNorm2d(32, eps=1e-04, affine=False)
        self.fc1 = torch.nn.Linear(32 * 7 * 7, 128, bias=False)
        self.bn1d1 = torch.nn.BatchNorm1d(128, eps=1e-04, affine=False)
        self.fc2 = torch.nn.Linear(128, 64, bias=False)

    def forward(self, x):
        x = F.max_pool2d(F.leaky_relu(self.bn2d1(self.conv1(x))), 2, 2)
        x = F.max_pool2d(F.leaky_relu(self.bn2d2(self.conv2(x))), 2, 2)
        x = F.leaky_relu(self.bn1d1(self.fc1(x.flatten(1))))
        return self.fc2(x)


class FmnistDecoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc3 = torch.nn.Linear(64, 128, bias=False)
        self.bn1d2 = torch.nn.BatchNorm1d(128, eps=1e-04, affine=False)
        self.deconv1 = torch.nn.ConvTranspose2d(8, 32, 5, bias=False, padding=2)
        self.bn2d3 = torch.nn.BatchNorm2d(32, eps=1e-04, affine=False)
        self.deconv2 = torch.nn.ConvTranspose2d(32, 16, 5, bias=False, padding=3)
        self.bn2d4 = torch.nn.BatchNorm2d(16, eps=1e-04, affine=False)
        self.deconv3 = torch.nn.ConvTranspose2d(16, 1, 5, bias=False, padding=2)

    def forward(self, x):
        x = self.bn1d2(self.fc3(x)).view(x.size(0), 8, 4, 4)
        x = self.deconv1(F.interpolate(F.leaky_relu(x), scale_factor=2))
        x = self.deconv2(F.interpolate(F.leaky_relu(self.bn2d3(x)), scale_factor=2))
        x = self.deconv3(F.interpolate(F.leaky_relu(self.bn2d4(x)), scale_factor=2))
        return torch.sigmoid(x)


def make_dsvdd_ae(fx):
    """One training-mode pass of the Fashion-MNIST autoencoder on 6 images: the loss (batch mean of
    per-image sums of squared errors), every parameter's gradient and the running statistics."""
    ae = torch.nn.Sequential()
    ae.add_module("encoder", FmnistEncoder())
    ae.add_module("decoder", FmnistDecoder())
    ae = ae.double()
    with torch.no_grad():
        for t in ae.state_dict().values():
            t.copy_(t.float().double())
    x = torch.rand(6, 1, 28, 28)
    for name, t in ae.state_dict().items():
        fx[name] = t.float()
    fx["x"] = x
    ae.train()
    xd = x.double()
    loss = ((ae(xd) - xd) ** 2).flatten(1).sum(1).mean()
    loss.backward()
    fx["loss"] = loss.detach().float().reshape(1)
    for name, p in ae.named_parameters():
        fx["grad." + name] = p.grad.float()
    for name, t in ae.state_dict().items():
        if "running" in name:
            fx["after." + name] = t.float()


# ---- image resizing (tests/test_images.cpp) --------------------------------------------------
def make_resize(fx, out):
    """Float images [C, H, W] with values 0..255 resized by torch F.interpolate (bilinear, antialias
    False and True, float64) and by PIL Image.resize on mode "F" images (BILINEAR, LANCZOS,
    NEAREST; PIL resamples "F" in double and stores float32). Plus torchvision's centre-crop
    offsets and shorter-side sizes, and end-to-end pipelines on a PNG written here."""
    from PIL import Image
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF

    # (C, H, W, Ho, Wo): down, up, 300 -> 224, mixed, tiny, one axis unchanged
    cases = [(3, 37, 53, 16, 16), (2, 20, 20, 45, 31), (1, 300, 300, 224, 224),
             (2, 40, 25, 17, 60), (1, 7, 9, 3, 2), (2, 13, 11, 13, 29)]
    for i, (C, H, W, Ho, Wo) in enumerate(cases):
        x = torch.rand(C, H, W) * 255  # float32
        p = f"r{i}"
        fx[p + ".x"] = x
        fx[p + ".size"] = torch.tensor([Ho, Wo], dtype=torch.float32)
        for key, aa in (("bilinear", False), ("bilinear_aa_torch", True)):
            fx[f"{p}.{key}"] = F.interpolate(x.double()[None], size=(Ho, Wo), mode="bilinear",
                                             align_corners=False, antialias=aa)[0]
        for key, flt in (("bilinear_aa_pil", Image.BILINEAR), ("lanczos", Image.LANCZOS),
                         ("nearest", Image.NEAREST)):
            chans = [np.asarray(Image.fromarray(x[c].numpy()).resize((Wo, Ho), flt))
                     for c in range(C)]
            fx[f"{p}.{key}"] = torch.from_numpy(np.stack(chans).astype(np.float32))

    # torchvision CenterCrop offsets (round half to even) from the top-left value of a cropped arange
    crops = [(255, 255, 224, 224), (257, 257, 224, 224), (259, 260, 224, 224), (10, 7, 3, 4),
             (5, 5, 2, 2), (256, 273, 224, 224), (9, 9, 9, 9)]
    offsets = []
    for h, w, ch, cw in crops:
        v = int(TF.center_crop(torch.arange(h * w).reshape(1, h, w), [ch, cw])[0, 0, 0])
        offsets.append([v // w, v % w])
    fx["crop.cases"] = torch.tensor(crops, dtype=torch.float32)
    fx["crop.offsets"] = torch.tensor(offsets, dtype=torch.float32)

    # torchvision Resize(S) output sizes (shorter side S, longer side truncated)
    shorter = [(300, 320, 256), (320, 300, 256), (700, 900, 256), (333, 1000, 224),
               (1024, 1024, 256), (481, 640, 256), (17, 5, 7)]
    fx["shorter.cases"] = torch.tensor(shorter, dtype=torch.float32)
    fx["shorter.sizes"] = torch.tensor([TF._compute_resized_output_size((h, w), [s])
                                        for h, w, s in shorter], dtype=torch.float32)

    # End-to-end: an RGB PNG (smooth pattern + noise, uint8) through the torchvision pipelines on a
    # PIL image, which resample in 8-bit fixed point; normad works in float (see data/image.h).
    H, W = 300, 320
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    base = torch.stack([128 + 100 * torch.sin(xx / 9.0), 128 + 100 * torch.cos(yy / 7.0),
                        (xx + yy).float() * 255 / (H + W)])
    img = (base + torch.randn(3, H, W) * 20).clamp(0, 255).round().to(torch.uint8)
    png = os.path.join(out, "resize_pipeline.png")
    Image.fromarray(img.permute(1, 2, 0).numpy(), "RGB").save(png)
    norm = T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    pil = Image.open(png).convert("RGB")
    for key, interp in (("lanczos", T.InterpolationMode.LANCZOS),
                        ("bilinear_aa", T.InterpolationMode.BILINEAR)):
        tf = T.Compose([T.Resize(256, interp), T.CenterCrop(224), T.ToTensor(), norm])
        fx["pipe." + key] = tf(pil)
    # JPEG as PIL decodes it (libjpeg-turbo, as normad since issue 15): an RGB file and an Adobe
    # CMYK file (PIL writes CMYK inverted with an Adobe marker), both converted to RGB by PIL.
    jpg_rgb, jpg_cmyk = os.path.join(out, "jpeg_rgb.jpg"), os.path.join(out, "jpeg_cmyk.jpg")
    Image.fromarray(img.permute(1, 2, 0).numpy()[:40, :56], "RGB").save(jpg_rgb, quality=90)
    cmyk = torch.randint(0, 256, (12, 10, 4), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    Image.fromarray(cmyk.numpy(), "CMYK").save(jpg_cmyk, quality=95)
    for key, path in (("jpeg.rgb", jpg_rgb), ("jpeg.cmyk", jpg_cmyk)):
        fx[key] = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).astype(np.float32)).permute(2, 0, 1)
    # Gaussian-AD's S x S bilinear without antialiasing, as torch computes it in float64
    fx["pipe.bilinear"] = norm(F.interpolate(img.double()[None], size=(64, 64), mode="bilinear",
                                             align_corners=False)[0] / 255)


def main():
    if len(sys.argv) != 2:
        print("usage: make_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    meta = {"generator": "tests/make_fixtures.py", "torch": torch.__version__}
    families = [("conv2d", make_conv), ("batchnorm", make_batchnorm), ("linear", make_linear),
                ("pool", make_pool), ("distance", make_distance), ("adam", make_optim),
                ("acr", make_acr), ("acr_ntl", make_acr_ntl), ("conv_transpose", make_conv_transpose),
                ("dsvdd_ae", make_dsvdd_ae), ("resize", lambda fx: make_resize(fx, out))]
    for seed, (name, make) in enumerate(families):
        torch.manual_seed(seed)  # one seed per file: adding a case elsewhere changes nothing here
        fx = {}
        make(fx)
        save(os.path.join(out, name + ".safetensors"), fx, meta)
        print(f"make_fixtures: {name}.safetensors ({len(fx)} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
