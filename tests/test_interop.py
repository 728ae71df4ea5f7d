#!/usr/bin/python3
"""PyTorch interop: a checkpoint exported with scripts/to_torch.py predicts what `trainer
predict` predicts (to 1e-5), and weights imported with scripts/from_torch.py start a run
from exactly those parameters; training agrees with a PyTorch loop step for step with each
GEMM engine (fp32), and a bf16 step agrees with PyTorch's own bf16 CPU path (autocast).
Exits 77 (skipped) when PyTorch is not installed.

usage: tests/test_interop.py TRAINER_BINARY SOURCE_DIR
"""
import os
import subprocess
import sys
import tempfile

import checks
from checks import check

try:
    import torch
except ImportError:
    print("SKIP: PyTorch is not installed (apt-get install python3-torch)")
    sys.exit(77)
import h5py
import numpy as np

trainer, source = sys.argv[1], sys.argv[2]
scripts = os.path.join(source, "scripts")
sys.path.insert(0, scripts)
tmp = tempfile.mkdtemp(prefix="trainer-interop-")


def run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if r.returncode != 0:
        print(" ".join(args), "failed:", r.stdout, r.stderr, sep="\n")
        sys.exit(1)
    return r.stdout


CASES = {
    # name: (model and data overrides, how torch's output becomes trainer's prediction)
    "binary": (["--set", "data.generator=moons", "--set", "model.layers=2,16,16,1", "--set", "model.activations=tanh",
                "--set", "model.output_activation=sigmoid", "--set", "train.loss=bce"], "sigmoid_out"),
    "multiclass": (["--set", "data.generator=blobs", "--set", "data.classes=4", "--set", "model.layers=2,16,4",
                    "--set", "model.activations=gelu", "--set", "model.output_activation=identity",
                    "--set", "train.loss=cross_entropy"], "softmax"),
    "regression": (["--set", "data.generator=inverse", "--set", "model.layers=1,8,8,1", "--set",
                    "model.activations=elu", "--set", "model.output_activation=identity", "--set", "train.loss=mse"],
                   "identity"),
}

config = os.path.join(tmp, "base.ini")
with open(config, "w") as f:
    f.write("[model]\nlayers = 2, 4, 1\n[data]\ngenerator = moons\nn = 400\nscale = standard\ntest_fraction = 0.2\n"
            "[train]\nloss = mse\noptimizer = adam\nlr = 0.01\nepochs = 5\n")

for name, (sets, kind) in CASES.items():
    run_dir = os.path.join(tmp, name)
    run(trainer, "train", config, "--set", f"output.dir={run_dir}", *sets)
    ckpt = os.path.join(run_dir, "best.h5")
    features = 1 if name == "regression" else 2
    gen = {"binary": "moons", "multiclass": "blobs", "regression": "inverse"}[name]
    inp = os.path.join(tmp, f"{name}-in.h5")
    run(trainer, "data", "gen", gen, "--out", inp, "--n", "300", "--seed", "7",
        *(["--classes", "4"] if name == "multiclass" else []))
    pred = os.path.join(tmp, f"{name}-pred.h5")
    run(trainer, "predict", "--checkpoint", ckpt, "--input", inp, "--output", pred)
    with h5py.File(pred, "r") as f:
        want = np.array(f["probabilities" if kind != "identity" else "predictions"])
    # export and predict with PyTorch
    pt = os.path.join(tmp, f"{name}.pt")
    run("/usr/bin/python3", os.path.join(scripts, "to_torch.py"), ckpt, pt)
    saved = torch.load(pt)
    model, scaler = saved["model"], saved["scaler"]
    with h5py.File(inp, "r") as f:
        x = torch.from_numpy(np.array(f["X"], dtype=np.float32))
    x = (x - scaler["center"]) / scaler["scale"]
    with torch.no_grad():
        y = model(x)
    if kind == "softmax":
        y = torch.softmax(y, dim=1)
    got = y.numpy()
    diff = float(np.max(np.abs(got - want)))
    check(f"{name}: PyTorch predictions match trainer predict ({diff:.2e})", got.shape == want.shape and diff < 1e-5)
    # import into a new run: --init-from with 0 epochs keeps the parameters exactly
    init = os.path.join(tmp, f"{name}-init.h5")
    run("/usr/bin/python3", os.path.join(scripts, "from_torch.py"), pt, init)
    again = os.path.join(tmp, f"{name}-again")
    run(trainer, "train", config, "--set", f"output.dir={again}", *sets, "--set", "train.epochs=0",
        "--init-from", init)
    last = sorted(p for p in os.listdir(again) if p.startswith("ckpt-"))[-1]
    with h5py.File(ckpt, "r") as a, h5py.File(os.path.join(again, last), "r") as b:
        same = all(np.array_equal(a["model"][i][k], b["model"][i][k]) for i in a["model"] for k in a["model"][i])
    check(f"{name}: from_torch.py + --init-from restore the parameters bit for bit", same)

# ---------------------------------------------------------------- training agrees with PyTorch
# The same initial parameters, the same batches in the same order: a few epochs of trainer
# and of a plain PyTorch loop end with the same parameters and batch-norm statistics.
TRAIN_CASES = {
    "bn-before + sgd momentum + bce": (
        ["--set", "data.generator=moons", "--set", "model.layers=2,8,8,1", "--set", "model.activations=tanh",
         "--set", "model.output_activation=sigmoid", "--set", "train.loss=bce", "--set", "model.batchnorm=true",
         "--set", "train.optimizer=momentum", "--set", "train.lr=0.1"],
        dict(loss="bce", opt="momentum")),
    "bn-after + momentum + cross-entropy + l2 + clip_norm + step schedule": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=relu", "--set", "model.output_activation=identity",
         "--set", "train.loss=cross_entropy", "--set", "model.batchnorm=true",
         "--set", "model.batchnorm_position=after", "--set", "train.optimizer=momentum", "--set", "train.lr=0.1",
         "--set", "train.l2=0.001", "--set", "train.clip_norm=0.5", "--set", "train.lr_schedule=step",
         "--set", "train.step_size=1", "--set", "train.gamma=0.5"],
        dict(loss="ce", opt="momentum", l2=0.001, clip=0.5, step_gamma=0.5)),
    # Adam without batch norm: in front of a batch norm a bias has a gradient that is zero up
    # to rounding, and Adam's g / sqrt(v) turns that rounding into full-size steps.
    "adam + weighted cross-entropy": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=relu", "--set", "model.output_activation=identity",
         "--set", "train.loss=cross_entropy", "--set", "train.class_weights=1,2,0.5",
         "--set", "train.optimizer=adam", "--set", "train.lr=0.05"],
        dict(loss="ce", opt="adam", class_weights=[1.0, 2.0, 0.5])),
    "adam + weighted cross-entropy + label smoothing": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=relu", "--set", "model.output_activation=identity",
         "--set", "train.loss=cross_entropy", "--set", "train.class_weights=1,2,0.5",
         "--set", "train.label_smoothing=0.1", "--set", "train.optimizer=adam", "--set", "train.lr=0.05"],
        dict(loss="ce", opt="adam", class_weights=[1.0, 2.0, 0.5], label_smoothing=0.1)),
    # per-step schedules: OneCycleLR (momentum cycled for SGD, beta1 for Adam), and a linear
    # warm-up followed by a cosine over the remaining steps
    "momentum + onecycle": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=relu", "--set", "model.output_activation=identity",
         "--set", "train.loss=cross_entropy", "--set", "train.optimizer=momentum", "--set", "train.lr=0.1",
         "--set", "train.lr_schedule=onecycle"],
        dict(loss="ce", opt="momentum", onecycle=True)),
    "adam + onecycle (beta1 cycled) + label smoothing": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=relu", "--set", "model.output_activation=identity",
         "--set", "train.loss=cross_entropy", "--set", "train.optimizer=adam", "--set", "train.lr=0.05",
         "--set", "train.lr_schedule=onecycle", "--set", "train.onecycle_pct_start=0.25",
         "--set", "train.label_smoothing=0.05"],
        dict(loss="ce", opt="adam", onecycle=True, pct_start=0.25, label_smoothing=0.05)),
    "adam + warm-up and cosine per step": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=relu", "--set", "model.output_activation=identity",
         "--set", "train.loss=cross_entropy", "--set", "train.optimizer=adam", "--set", "train.lr=0.05",
         "--set", "train.lr_schedule=cosine_steps", "--set", "train.warmup_steps=3", "--set", "train.eta_min=0.001"],
        dict(loss="ce", opt="adam", cosine_steps=(3, 0.001))),
    "adagrad (lr_decay, initial accumulator, weight decay)": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=relu", "--set", "model.output_activation=identity",
         "--set", "train.loss=cross_entropy", "--set", "train.optimizer=adagrad", "--set", "train.lr=0.05",
         "--set", "train.lr_decay=0.01", "--set", "train.initial_accumulator_value=0.1",
         "--set", "train.weight_decay=0.001", "--set", "train.penalty_params=all"],
        dict(loss="ce", opt="adagrad")),
    # the layer-wise large-batch optimizers, against timm's Lars and Lamb written out below
    "lars (momentum, weight decay)": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=relu", "--set", "model.output_activation=identity",
         "--set", "train.loss=cross_entropy", "--set", "train.optimizer=lars", "--set", "train.lr=2",
         "--set", "train.weight_decay=0.0005", "--set", "train.trust_coefficient=0.01"],
        dict(loss="ce", opt="lars")),
    "lamb (weight decay) + clip_norm": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=relu", "--set", "model.output_activation=identity",
         "--set", "train.loss=cross_entropy", "--set", "train.optimizer=lamb", "--set", "train.lr=0.02",
         "--set", "train.clip_norm=0.5"],
        dict(loss="ce", opt="lamb", clip=0.5)),
    # the weights' moving average: AveragedModel(get_ema_multi_avg_fn(0.8), use_buffers=True),
    # batch norm's running statistics averaged too
    "momentum + batch norm + ema": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=relu", "--set", "model.output_activation=identity",
         "--set", "train.loss=cross_entropy", "--set", "model.batchnorm=true", "--set", "train.optimizer=momentum",
         "--set", "train.lr=0.1", "--set", "train.ema_decay=0.8"],
        dict(loss="ce", opt="momentum", ema=0.8)),
    # what a course does and PyTorch accepts: CrossEntropyLoss after nn.Softmax (applied twice)
    "softmax output + cross-entropy (softmax twice)": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=relu", "--set", "model.output_activation=softmax",
         "--set", "train.loss=cross_entropy", "--set", "train.optimizer=adam", "--set", "train.lr=0.05"],
        dict(loss="ce", opt="adam")),
    "log_softmax output + nll": (
        ["--set", "data.generator=blobs", "--set", "data.classes=3", "--set", "model.layers=2,8,8,3",
         "--set", "model.activations=tanh", "--set", "model.output_activation=log_softmax",
         "--set", "train.loss=nll", "--set", "train.optimizer=momentum", "--set", "train.lr=0.1"],
        dict(loss="nll", opt="momentum")),
}
common = ["--set", "data.n=256", "--set", "data.test_fraction=0", "--set", "data.scale=none", "--set",
          "train.shuffle=false", "--set", "train.batch_size=64", "--set", "train.threads=1", "--set",
          "train.sync_bn=false"]
import to_torch  # noqa: E402
from trainer_h5 import read_checkpoint  # noqa: E402


class LayerWise(torch.optim.Optimizer):
    """timm's Lars (trust_clip off) and Lamb (grad_averaging, bias correction, no clipping of
    its own), each group's `adapt` saying whether its tensors get the trust ratio."""

    def __init__(self, groups, kind, lr, momentum=0.9, betas=(0.9, 0.999), eps=1e-8, trust_coeff=0.001):
        super().__init__(groups, dict(lr=lr, weight_decay=0.0, adapt=False))
        self.kind, self.momentum, self.betas, self.eps, self.trust_coeff = kind, momentum, betas, eps, trust_coeff

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            wd = g["weight_decay"]
            for p in g["params"]:
                st = self.state[p]
                st["step"] = st.get("step", 0) + 1
                grad = p.grad.clone()
                if self.kind == "lamb":
                    b1, b2 = self.betas
                    m = st.setdefault("exp_avg", torch.zeros_like(p))
                    v = st.setdefault("exp_avg_sq", torch.zeros_like(p))
                    m.mul_(b1).add_(grad, alpha=1 - b1)
                    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                    denom = (v.sqrt() / (1 - b2 ** st["step"]) ** 0.5).add_(self.eps)
                    update = (m / (1 - b1 ** st["step"])).div_(denom)
                    update.add_(p, alpha=wd)
                    if g["adapt"]:
                        w, u = p.norm(2.0), update.norm(2.0)
                        update.mul_(w / u if w > 0 and u > 0 else 1.0)
                    p.add_(update, alpha=-g["lr"])
                else:
                    if g["adapt"]:
                        w, n = p.norm(2.0), grad.norm(2.0)
                        trust = self.trust_coeff * w / (n + w * wd + self.eps) if w > 0 and n > 0 else 1.0
                        grad.add_(p, alpha=wd).mul_(trust)
                    if "momentum_buffer" not in st:
                        st["momentum_buffer"] = grad.clone()
                    else:
                        st["momentum_buffer"].mul_(self.momentum).add_(grad)
                    p.add_(st["momentum_buffer"], alpha=-g["lr"])


def layer_groups(model, weight_decay):
    weights = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 2]
    others = [p for n, p in model.named_parameters() if not (n.endswith("weight") and p.dim() == 2)]
    return [dict(params=weights, weight_decay=weight_decay, adapt=True), dict(params=others)]


for (name, (sets, how)), engine in ((case, e) for case in TRAIN_CASES.items() for e in ("openblas", "onednn")):
    name = f"{name} [gemm {engine}]"
    sets = sets + ["--set", f"train.gemm={engine}"]
    d0, d1 = os.path.join(tmp, "t0"), os.path.join(tmp, "t1")
    run(trainer, "train", config, "--set", f"output.dir={d0}", *common, *sets, "--set", "train.epochs=0")
    run(trainer, "train", config, "--set", f"output.dir={d1}", *common, *sets, "--set", "train.epochs=3")
    start = to_torch.build(read_checkpoint(os.path.join(d0, "ckpt-000000000.h5")))
    done_ck = read_checkpoint(os.path.join(d1, "ckpt-000000012.h5"))
    done = done_ck["tensors"]
    gen = os.path.join(tmp, "train.h5")
    run(trainer, "data", "gen", "moons" if how["loss"] == "bce" else "blobs", "--out", gen, "--n", "256",
        *(["--classes", "3"] if how["loss"] != "bce" else []))
    with h5py.File(gen, "r") as f:
        X = torch.from_numpy(np.array(f["X"], dtype=np.float32))
        Y = torch.from_numpy(np.array(f["y"]))
    model = start.train()
    averaged = None
    if "ema" in how:
        swa, decay = torch.optim.swa_utils, how["ema"]
        if hasattr(swa, "get_ema_multi_avg_fn"):  # PyTorch 2.1 on
            averaged = swa.AveragedModel(model, multi_avg_fn=swa.get_ema_multi_avg_fn(decay), use_buffers=True)
        else:  # the EMA of the 1.x documentation
            averaged = swa.AveragedModel(model, avg_fn=lambda a, p, n: decay * a + (1 - decay) * p, use_buffers=True)
    if how["opt"] == "momentum":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    elif how["opt"] == "adagrad":
        opt = torch.optim.Adagrad(model.parameters(), lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1,
                                  weight_decay=0.001)
    elif how["opt"] == "lars":
        opt = LayerWise(layer_groups(model, 0.0005), "lars", lr=2.0, trust_coeff=0.01)
    elif how["opt"] == "lamb":
        opt = LayerWise(layer_groups(model, 0.01), "lamb", lr=0.02, eps=1e-6)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, how["step_gamma"]) if "step_gamma" in how else None
    per_step = None  # 3 epochs of 4 steps
    if how.get("onecycle"):
        per_step = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"], total_steps=12,
                                                       pct_start=how.get("pct_start", 0.3))
    elif "cosine_steps" in how:
        warm, eta_min = how["cosine_steps"]
        per_step = torch.optim.lr_scheduler.SequentialLR(opt, [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warm, end_factor=1.0, total_iters=warm - 1),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=12 - warm, eta_min=eta_min)], milestones=[warm])
    for epoch in range(3):
        for b in range(0, 256, 64):
            x, y = X[b:b + 64], Y[b:b + 64]
            out = model(x)
            if how["loss"] == "bce":
                loss = torch.nn.functional.binary_cross_entropy(out, y.float().reshape(-1, 1))
            elif how["loss"] == "nll":
                loss = torch.nn.functional.nll_loss(out, y.long())
            else:
                weight = torch.tensor(how["class_weights"]) if "class_weights" in how else None
                loss = torch.nn.functional.cross_entropy(out, y.long(), weight=weight,
                                                         label_smoothing=how.get("label_smoothing", 0.0))
            if "l2" in how:
                loss = loss + how["l2"] * sum((m.weight ** 2).sum() for m in model if isinstance(m, torch.nn.Linear))
            opt.zero_grad()
            loss.backward()
            if "clip" in how:
                torch.nn.utils.clip_grad_norm_(model.parameters(), how["clip"])
            opt.step()
            if averaged is not None:
                averaged.update_parameters(model)
            if per_step:
                per_step.step()
        if sched:
            sched.step()
    state = model.state_dict()
    worst = max(float(np.max(np.abs(state[k].numpy().astype(np.float64) - done[k].astype(np.float64))))
                for k in state)
    check(f"{name}: 12 steps of trainer and of PyTorch agree ({worst:.2e} largest difference)", worst < 2e-5)
    if averaged is not None:
        avg = averaged.module.state_dict()
        keys = [k for k in avg if not k.endswith("num_batches_tracked")]
        worst = max(float(np.max(np.abs(avg[k].numpy().astype(np.float64) - done_ck["ema"][k].astype(np.float64))))
                    for k in keys)
        apart = max(float(np.max(np.abs(avg[k].numpy().astype(np.float64) - state[k].numpy()))) for k in keys)
        check(f"{name}: the moving average (weights and running statistics) agrees with AveragedModel's "
              f"({worst:.2e}; it is {apart:.2e} from the weights)", worst < 2e-5 and apart > 1e-3)
    import shutil  # noqa: E402
    shutil.rmtree(d0)
    shutil.rmtree(d1)

# ---------------------------------------------------------------- bf16 against PyTorch's bf16
# One SGD step (lr 0.1, no momentum) of a 32-64-64-4 ReLU network on 128 rows, from the same
# parameters: the update is -0.1 x the gradient, compared with the same step of PyTorch under
# torch.autocast("cpu", dtype=torch.bfloat16). Both round the products' inputs (x, W, and in
# backward the gradient flowing into each product) to bf16 alike; they differ where autocast
# also rounds a product's output (the logits, each weight gradient, each input gradient) and
# the trainer keeps fp32. A rounding to bf16 moves a value by at most 2^-9 of itself, so each
# gradient element, a sum of terms dZ[r, o] x[r, i], moves by a few 2^-9 of the sum of its
# terms' magnitudes (|dZ|^T |x|, measured on PyTorch's fp32 step), not of the gradient itself,
# which cancels. Of autocast's three extra roundings, the weight gradient's is relative to the
# gradient itself; the logits' and the input gradients' reach the sums' terms: the tolerance
# is 3 roundings' worth, 3 x 2^-9 x lr x || |dZ|^T |x| ||, norm-wise over all tensors. And the
# trainer's bf16 step must be nearer PyTorch's bf16 step than PyTorch's fp32 one (it rounds the
# same inputs). Controls: the trainer's fp32 step differs from its bf16 step (bf16 was on) by
# more than a tenth of the tolerance, and agrees with PyTorch fp32 to 1e-5.
bf16_probe = subprocess.run([trainer, "train", config, "--set", "train.precision=bf16", "--set", "train.epochs=0",
                             "--set", f"output.dir={tmp}/bf16-probe"], capture_output=True, text=True)
if bf16_probe.returncode != 0:
    print("skip bf16 against PyTorch: " + (bf16_probe.stderr.strip().splitlines() or ["?"])[-1])
else:
    LR = 0.1
    sets = ["--set", "data.generator=random", "--set", "data.n=128", "--set", "data.n_features=32",
            "--set", "data.classes=4", "--set", "model.layers=32,64,64,4", "--set", "model.activations=relu",
            "--set", "model.output_activation=identity", "--set", "train.loss=cross_entropy",
            "--set", "train.optimizer=sgd", "--set", f"train.lr={LR}", "--set", "train.batch_size=128",
            "--set", "data.test_fraction=0", "--set", "data.scale=none", "--set", "train.shuffle=false",
            "--set", "train.threads=1"]
    steps = {}
    for prec in ("fp32", "bf16"):
        d = os.path.join(tmp, f"step-{prec}")
        run(trainer, "train", config, "--set", f"output.dir={d}", *sets, "--set", "train.epochs=1",
            "--set", f"train.precision={prec}", "--set", "output.checkpoint_every=1")
        steps[prec] = {k: v.astype(np.float64) for k, v in
                       read_checkpoint(os.path.join(d, "ckpt-000000001.h5"))["tensors"].items()}
    d0 = os.path.join(tmp, "step-0")
    run(trainer, "train", config, "--set", f"output.dir={d0}", *sets, "--set", "train.epochs=0")
    initial = read_checkpoint(os.path.join(d0, "ckpt-000000000.h5"))
    gen = os.path.join(tmp, "random.h5")
    run(trainer, "data", "gen", "random", "--out", gen, "--n", "128", "--n_features", "32", "--classes", "4")
    with h5py.File(gen, "r") as f:
        X = torch.from_numpy(np.array(f["X"], dtype=np.float32))
        Y = torch.from_numpy(np.array(f["y"])).long().reshape(-1)
    torch_step, magnitude = {}, {}
    for prec in ("fp32", "bf16"):
        model = to_torch.build(initial).train()
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        seen = {}
        if prec == "fp32":  # each Linear's input and output gradient: the terms of its gradient
            for name, mod in model.named_children():
                if isinstance(mod, torch.nn.Linear):
                    mod.register_forward_hook(lambda m, i, o, n=name: seen.__setitem__(n + ".x", i[0].detach()))
                    mod.register_full_backward_hook(
                        lambda m, gi, go, n=name: seen.__setitem__(n + ".dz", go[0].detach()))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(X), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        torch_step[prec] = {k: v.detach().numpy().astype(np.float64) for k, v in model.state_dict().items()}
        for n in {k.split(".")[0] for k in seen}:
            dz, x = seen[n + ".dz"].abs().double(), seen[n + ".x"].abs().double()
            magnitude[n + ".weight"] = (dz.t() @ x).numpy()
            magnitude[n + ".bias"] = dz.sum(0).numpy()
    start = {k: v.astype(np.float64) for k, v in initial["tensors"].items()}

    def distance(a, b):
        """|| update_a - update_b || over every tensor."""
        return sum(float(np.sum(((a[k] - start[k]) - (b[k] - start[k])) ** 2)) for k in b) ** 0.5

    scale = LR * sum(float(np.sum(m ** 2)) for m in magnitude.values()) ** 0.5
    tol = 3 * 2 ** -9 * scale
    e_bf = distance(steps["bf16"], torch_step["bf16"])
    e_prec = distance(steps["bf16"], steps["fp32"])
    e_32 = distance(steps["fp32"], torch_step["fp32"])
    norm = distance(torch_step["fp32"], start)
    print(f"     one bf16 step (update norm {norm:.3e}, terms' scale {scale:.3e}): trainer against PyTorch "
          f"autocast {e_bf:.3e} (tolerance {tol:.3e}), against PyTorch fp32 {distance(steps['bf16'], torch_step['fp32']):.3e};"
          f" PyTorch autocast against fp32 {distance(torch_step['bf16'], torch_step['fp32']):.3e}; trainer fp32 "
          f"against PyTorch fp32 {e_32:.3e}")
    check(f"a bf16 step agrees with PyTorch's autocast step ({e_bf:.3e} < {tol:.3e})", e_bf < tol)
    check("the bf16 step is nearer PyTorch's autocast step than PyTorch's fp32 step", e_bf < distance(steps["bf16"], torch_step["fp32"]))
    check(f"control: the trainer's bf16 step differs from its fp32 step ({e_prec:.3e})", e_prec > tol / 10)
    check(f"the same step in fp32 agrees with PyTorch fp32 ({e_32:.3e})", e_32 < 1e-5 * norm)

checks.finish()
