#!/usr/bin/python3
"""Imports PyTorch weights as a file `trainer train --init-from` accepts.

usage: scripts/from_torch.py MODEL.pt INIT.h5

MODEL.pt is an nn.Sequential of Linear, BatchNorm1d, Dropout and activation modules, its
state_dict, or a file written by to_torch.py. Writes /model/<i>/weight and /model/<i>/bias under the Sequential
indices, and the architecture (layers, activations) when the modules are known, so the
trainer checks it against the configuration. Needs python3-torch, python3-h5py.
"""
import argparse

import numpy as np

import trainer_h5 as th
from trainer_h5 import fail

try:
    import torch
    from torch import nn
except ImportError:
    fail("PyTorch is not installed (apt-get install python3-torch)", 3)

NAMES = {"Sigmoid": "sigmoid", "Tanh": "tanh", "ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu",
         "SELU": "selu", "GELU": "gelu", "SiLU": "silu", "Softplus": "softplus", "Softmax": "softmax",
         "LogSoftmax": "log_softmax", "Identity": "identity"}


def architecture(model):
    """(layers, activations, sequential) of an nn.Sequential, or None if it has other modules."""
    widths, acts, seq = [], [], []
    for m in model:
        kind = type(m).__name__
        if isinstance(m, nn.Linear):
            if not widths:
                widths.append(m.in_features)
            widths.append(m.out_features)
            acts.append("identity")
            seq.append("Linear")
        elif kind in NAMES and acts:
            acts[-1] = NAMES[kind]
            if kind != "Identity":
                seq.append(kind)
        elif isinstance(m, nn.BatchNorm1d) and acts:
            seq.append("BatchNorm1d")
        elif isinstance(m, nn.Dropout) and acts:
            seq.append(f"Dropout({m.p:g})")
        else:
            return None
    return ",".join(map(str, widths)), ",".join(acts), ",".join(seq)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Example: scripts/from_torch.py model.pt init.h5; "
                                        "trainer train CONFIG --init-from init.h5")
    ap.add_argument("model")
    ap.add_argument("output")
    a = ap.parse_args()
    obj = torch.load(a.model, map_location="cpu")
    arch = None
    if isinstance(obj, dict) and "model" in obj:
        obj = obj["model"]
    if isinstance(obj, nn.Sequential):
        arch = architecture(obj)
        state = obj.state_dict()
    elif isinstance(obj, dict):
        state = obj
    else:
        fail(f"{a.model}: expected an nn.Sequential or a state_dict, got {type(obj).__name__}")
    with th.create_checkpoint(a.output) as f:
        g = f.create_group("model")
        for key, value in state.items():
            idx, kind = key.split(".", 1)
            if kind not in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                fail(f"{a.model}: tensor {key} is not a Linear or BatchNorm1d tensor")
            data = value.detach().cpu().numpy()
            data = data.reshape(1).astype(np.int64) if kind == "num_batches_tracked" else data.astype(np.float32)
            f.create_dataset(f"model/{idx}/{kind}", data=data)
        if arch:
            g.attrs["layers"], g.attrs["activations"], g.attrs["sequential"] = arch
            g.attrs["bias"] = int(any(k.endswith(".bias") for k in state))
    th.stamp_checkpoint(a.output)
    print(f"wrote {a.output}: {len(state)} tensors" + (f", layers {arch[0]}" if arch else ""))


if __name__ == "__main__":
    main()
