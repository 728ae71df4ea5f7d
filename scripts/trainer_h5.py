"""Helpers shared by the Python scripts: reading trainer checkpoints and run directories.

Only Debian's python3-h5py and python3-numpy are needed here; run the scripts with
/usr/bin/python3 (another python3 on PATH may not see Debian's packages).
"""
import os
import sys

import h5py
import numpy as np

ACTIVATIONS = ["Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "SELU", "GELU", "SiLU", "Softplus",
               "Softmax", "LogSoftmax"]


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


HEADER_BYTES = 512  # the checksummed header every file the trainer loads as a checkpoint starts with


def create_checkpoint(path):
    """An h5py.File for writing a checkpoint the trainer will accept: with room for the header.
    Call stamp_checkpoint(path) after closing it."""
    return h5py.File(path, "w", userblock_size=HEADER_BYTES)


def stamp_checkpoint(path):
    """Writes the trainer's header (byte count and CRC-32 of the HDF5 data after it) into the
    user block of a file made with create_checkpoint; the trainer checks it before loading."""
    import zlib
    with open(path, "r+b") as f:
        f.seek(HEADER_BYTES)
        body = f.read()
        header = f"trainer checkpoint\nbytes {len(body)}\ncrc32 {zlib.crc32(body) & 0xffffffff:08x}\n".encode()
        f.seek(0)
        f.write(header + b"\0" * (HEADER_BYTES - len(header)))


def scale(x, scaler):
    if scaler is None or scaler["kind"] == 0:
        return x
    return (x - scaler["center"]) / scaler["scale"]


def require_file(path, what):
    """Fails with a clear message unless path is an existing file; what says what it is for."""
    if not os.path.isfile(path):
        fail(f"{path}: no such file ({what})")
    return path


def run_config_path(run_dir):
    """The effective configuration file a run wrote: effective-config.ini when the run
    directory holds a user's own config.ini, else config.ini; None when there is neither."""
    for name in ("effective-config.ini", "config.ini"):
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            return path
    return None


def read_run_config(run_dir):
    """The effective configuration a run wrote (see run_config_path) as {"section.key": value}."""
    import configparser
    path = run_config_path(run_dir)
    if path is None:
        return {}
    cfg = configparser.ConfigParser(interpolation=None)
    try:
        cfg.read(path)
    except configparser.Error as e:
        fail(f"{path}: {e}")
    return {f"{s}.{k}": v for s in cfg.sections() for k, v in cfg[s].items()}


def class_names(names, classes):
    """A list of `classes` labels from a comma-separated `names` string ("" = 0, 1, ...)."""
    given = [n.strip() for n in names.split(",")] if names else []
    return [given[k] if k < len(given) and given[k] else str(k) for k in range(classes)]


def find_trainer(explicit=None):
    """The trainer binary: explicit, $TRAINER, build/trainer of this repository, or PATH."""
    import shutil
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (explicit, os.environ.get("TRAINER"), os.path.join(here, "..", "build", "trainer"),
                 shutil.which("trainer")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    fail("no trainer binary: build it (scripts/build.sh), or pass --trainer or set TRAINER")


def figure_size(spec):
    """--size WIDTHxHEIGHT in pixels -> (width, height) ints."""
    try:
        w, h = (int(v) for v in spec.lower().split("x"))
        if w < 100 or h < 100 or w > 10000 or h > 10000:
            raise ValueError
        return w, h
    except ValueError:
        fail(f"--size {spec}: expected WIDTHxHEIGHT in pixels, each 100 to 10000 (e.g. 900x600)")


def new_figure(size, **kw):
    """A matplotlib figure of exactly size = (width, height) pixels when saved at 100 dpi."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=(size[0] / 100, size[1] / 100), dpi=100, **kw)


def save_figure(fig, out):
    import matplotlib.pyplot as plt
    d = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(d):
        fail(f"{out}: the directory {d} does not exist")
    tmp = out + ".tmp.png"
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, out)
    except OSError as e:
        fail(f"{out}: cannot write ({e.strerror})", 4)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    print(out)
