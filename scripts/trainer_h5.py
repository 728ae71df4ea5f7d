"""Helpers shared by the Python scripts: reading trainer checkpoints and run directories.

Only Debian's python3-h5py and python3-numpy are needed here; run the scripts with
/usr/bin/python3 (another python3 on PATH may not see Debian's packages).
"""
import os
import sys

import h5py
import numpy as np

ACTIVATIONS = ["Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "SELU", "GELU", "SiLU", "Softplus",
               "Softmax"]


def fail(msg, status=2):
    print(f"{os.path.basename(sys.argv[0])}: error: {msg}", file=sys.stderr)
    sys.exit(status)


def attr_str(obj, name, default=None):
    v = obj.attrs.get(name, default)
    return v.decode() if isinstance(v, bytes) else v


def read_checkpoint(path):
    """The parameters, architecture, configuration and scaling of a checkpoint, as a dict."""
    if not os.path.exists(path):
        fail(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        fail(f"{path}: not a readable HDF5 checkpoint ({e})")
    with f:
        if "model" not in f:
            fail(f"{path}: no /model group: not a trainer checkpoint")
        model = f["model"]
        tensors = {}
        for idx in model:
            for kind in model[idx]:
                data = np.array(model[idx][kind])
                # parameters and running statistics are float32; num_batches_tracked is an integer
                tensors[f"{idx}.{kind}"] = data if data.dtype.kind == "i" else data.astype(np.float32)
        config = {k: attr_str(f["config"], k) for k in f["config"].attrs} if "config" in f else {}
        scaler = None
        if "scaler" in f:
            scaler = {"center": np.array(f["scaler/center"]), "scale": np.array(f["scaler/scale"]),
                      "kind": int(f["scaler"].attrs["kind"])}
        return {"tensors": tensors, "sequential": attr_str(model, "sequential", ""), "config": config,
                "scaler": scaler, "layers": attr_str(model, "layers", "")}


def scale(x, scaler):
    if scaler is None or scaler["kind"] == 0:
        return x
    return (x - scaler["center"]) / scaler["scale"]
