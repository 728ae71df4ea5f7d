#!/usr/bin/python3
"""Exports a trainer checkpoint to PyTorch.

usage: scripts/to_torch.py CHECKPOINT.h5 MODEL.pt [--ema]

Writes torch.save({"model": nn.Sequential, "state_dict": ..., "scaler": {"center", "scale"},
"config": {...}}): the Sequential has exactly the checkpoint's modules (Linear, BatchNorm1d,
activations, Dropout), so every state_dict key "<i>.<name>" is the checkpoint's
/model/<i>/<name>. The model is in eval() mode. Apply the scaler to the features first:
    x = (x - scaler["center"]) / scaler["scale"]; logits_or_outputs = model(x)
--ema exports the moving average of the weights (/ema, [train] ema_decay) instead of /model.
Needs Debian's python3-torch, python3-h5py and python3-numpy.
"""
import argparse
import sys

from trainer_h5 import fail, read_checkpoint

try:
    import torch
    from torch import nn
except ImportError:
    fail("PyTorch is not installed (apt-get install python3-torch)", 3)


def build(ck):
    cfg = ck["config"]
    slope = float(cfg.get("model.leaky_slope", "0.01") or 0.01)
    alpha = float(cfg.get("model.elu_alpha", "1") or 1)
    eps = float(cfg.get("model.bn_eps", "1e-5") or 1e-5)
    momentum = float(cfg.get("model.bn_momentum", "0.1") or 0.1)
    makers = {"Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "ReLU": nn.ReLU, "LeakyReLU": lambda: nn.LeakyReLU(slope),
              "ELU": lambda: nn.ELU(alpha), "SELU": nn.SELU, "GELU": nn.GELU, "SiLU": nn.SiLU,
              "Softplus": nn.Softplus, "Softmax": lambda: nn.Softmax(dim=1),
              "LogSoftmax": lambda: nn.LogSoftmax(dim=1)}
    modules = []
    for i, name in enumerate(ck["sequential"].split(",")):
        if name == "Linear":
            w = ck["tensors"][f"{i}.weight"]
            modules.append(nn.Linear(w.shape[1], w.shape[0], bias=f"{i}.bias" in ck["tensors"]))
        elif name == "BatchNorm1d":
            modules.append(nn.BatchNorm1d(ck["tensors"][f"{i}.weight"].shape[0], eps=eps, momentum=momentum))
        elif name.startswith("Dropout("):
            modules.append(nn.Dropout(float(name[len("Dropout("):-1])))
        elif name in makers:
            modules.append(makers[name]())
        else:
            fail(f"unknown module {name} in the checkpoint")
    model = nn.Sequential(*modules)
    state = {k: torch.from_numpy(v) for k, v in ck["tensors"].items()}
    for k in list(state):  # PyTorch keeps num_batches_tracked as a 0-d tensor
        if k.endswith("num_batches_tracked"):
            state[k] = state[k].reshape(())
    model.load_state_dict(state, strict=True)
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Example: scripts/to_torch.py run/best.h5 model.pt")
    ap.add_argument("checkpoint")
    ap.add_argument("output")
    ap.add_argument("--ema", action="store_true", help="export the moving average of the weights (/ema)")
    a = ap.parse_args()
    ck = read_checkpoint(a.checkpoint)
    if a.ema:
        if ck["ema"] is None:
            fail(f"{a.checkpoint}: no /ema: the run kept no moving average of its weights ([train] ema_decay)")
        ck["tensors"] = ck["ema"]
    if not ck["sequential"]:
        fail(f"{a.checkpoint}: no architecture (/model attribute 'sequential'): not written by trainer")
    model = build(ck)
    scaler = ck["scaler"]
    torch.save({"model": model, "state_dict": model.state_dict(),
                "scaler": None if scaler is None else {k: torch.from_numpy(scaler[k]) for k in ("center", "scale")},
                "config": ck["config"]}, a.output)
    print(f"wrote {a.output}: {model}")


if __name__ == "__main__":
    main()
