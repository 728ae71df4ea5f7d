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

        def state_dict(group):
            tensors = {}
            for idx in group:
                for kind in group[idx]:
                    data = np.array(group[idx][kind])
                    # parameters and running statistics are float32; num_batches_tracked is an integer
                    tensors[f"{idx}.{kind}"] = data if data.dtype.kind == "i" else data.astype(np.float32)
            return tensors
        tensors = state_dict(model)
        # [train] ema_decay: the moving average of the weights, in the same names
        ema = state_dict(f["ema"]) if "ema" in f else None
        config = {k: attr_str(f["config"], k) for k in f["config"].attrs} if "config" in f else {}
        scaler = None
        if "scaler" in f:
            scaler = {"center": np.array(f["scaler/center"]), "scale": np.array(f["scaler/scale"]),
                      "kind": int(f["scaler"].attrs["kind"])}
        return {"tensors": tensors, "sequential": attr_str(model, "sequential", ""), "config": config,
                "scaler": scaler, "layers": attr_str(model, "layers", ""), "ema": ema}


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


CLASSIFICATION_LOSSES = ("bce", "bce_logits", "cross_entropy", "nll")


def read_points(path, labels=None):
    """(x, y, column names or None) of a data file: HDF5 (/X features, /y targets: what `trainer
    data gen` and `trainer data convert` write), CSV with columns x0, x1, ..., y, or IDX images
    (gzip or not) with labels = their IDX labels file (pixels / 255, as the trainer reads them)."""
    require_file(path, "the data points to draw")
    if labels is not None or path.endswith(("idx3-ubyte", "idx3-ubyte.gz")):
        return read_idx(path, labels)
    columns = None
    if path.endswith((".h5", ".hdf5")):
        try:
            with h5py.File(path, "r") as f:
                if "X" not in f or "y" not in f:
                    fail(f"{path}: needs /X (features) and /y (targets), as `trainer data gen` writes")
                x, y = np.array(f["X"], dtype=np.float64), np.array(f["y"])
                names = attr_str(f["X"], "columns")
                columns = [n.strip() for n in names.split(", ")] if names else None
        except OSError as e:
            fail(f"{path}: not a readable HDF5 file ({e})")
    else:
        try:
            data = np.genfromtxt(path, delimiter=",", names=True)
        except ValueError as e:
            fail(f"{path}: not a CSV file of numbers with a header line ({e})")
        names = data.dtype.names or ()
        if "y" not in names:
            fail(f"{path}: no column y (expected x0, x1, ..., y as `trainer data gen` writes)")
        x = np.column_stack([data[n] for n in names if n != "y"]).astype(np.float64)
        y = data["y"]
    if x.ndim == 1:
        x = x[:, None]
    y = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
    if len(x) == 0:
        fail(f"{path}: no rows")
    return x, y, columns


def read_idx(images, labels):
    """IDX images (N, rows, cols) as (N, rows * cols) / 255 and their labels."""
    import gzip
    import struct

    def load(path):
        require_file(path, "an IDX file")
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            raw = f.read()
        if len(raw) < 8 or raw[0] or raw[1] or raw[2] != 8:
            fail(f"{path}: not an IDX file of unsigned bytes")
        dims = struct.unpack(">" + "I" * raw[3], raw[4:4 + 4 * raw[3]])
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * raw[3]).reshape(dims)

    if labels is None:
        fail(f"{images}: IDX images need their labels file (--labels)")
    x, y = load(images), load(labels)
    if len(x) != len(y):
        fail(f"{images}: {len(x)} images but {labels} has {len(y)} labels")
    return x.reshape(len(x), -1).astype(np.float64) / 255.0, y.astype(np.int64), None


def predict(trainer, checkpoint, x, layer=None):
    """`trainer predict` (the trainer's own scaling and kernels) on the rows of x: the output
    file's datasets ({"probabilities", "class"}, {"predictions"} or {"activations"})."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.h5"), os.path.join(tmp, "pred.h5")
        with h5py.File(inp, "w") as f:
            f["X"] = np.asarray(x, dtype=np.float32)
        cmd = [trainer, "predict", "--checkpoint", checkpoint, "--input", inp, "--output", out, "--features", "/X"]
        r = subprocess.run(cmd + (["--layer", str(layer)] if layer is not None else []), capture_output=True,
                           text=True)
        if r.returncode != 0:
            fail(f"trainer predict failed (status {r.returncode}): {r.stderr.strip()}", r.returncode)
        with h5py.File(out, "r") as f:
            return {k: np.array(f[k]) for k in f}


def picture_arguments(ap, out_help, size, trainer=True):
    """The options every picture script has: --out, --size, --trainer (when it runs the
    trainer) and --title."""
    ap.add_argument("--out", help=f"PNG to write (default: {out_help})")
    ap.add_argument("--size", default=size, help=f"image size in pixels, WIDTHxHEIGHT (default {size})")
    if trainer:
        ap.add_argument("--trainer", help="trainer binary (default: $TRAINER, build/trainer, or PATH)")
    ap.add_argument("--title", help="figure title")


def out_beside_checkpoint(args, name):
    """--out, or `name` in the checkpoint's directory."""
    return args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), name)


def classifier_and_points(args):
    """What the pictures of a classifier's view of data start from: the checkpoint (a
    classifier, else a clear failure), its class names and widths, the trainer binary, and
    args.data (with args.labels for IDX) as (x, y, column names) of the width the model takes."""
    ck = read_checkpoint(args.checkpoint)
    classifier, names, widths = model_classes(ck)
    if not classifier:
        fail(f"{args.checkpoint}: not a classifier (loss {ck['config'].get('train.loss', '?')})")
    trainer = find_trainer(args.trainer)
    x, y, columns = read_points(args.data, args.labels)
    if widths and x.shape[1] != widths[0]:
        fail(f"{args.data}: {x.shape[1]} features, but the model takes {widths[0]}")
    return names, widths, trainer, x, y, columns


def model_classes(ck):
    """(is a classifier, its class names) of a checkpoint read with read_checkpoint."""
    widths = [int(w) for w in ck["layers"].split(",")] if ck["layers"] else []
    classifier = ck["config"].get("train.loss", "") in CLASSIFICATION_LOSSES
    k = 2 if widths and widths[-1] == 1 else (widths[-1] if widths else 2)
    return classifier, class_names(ck["config"].get("data.class_names", ""), k), widths


def image_shape(features, spec=None):
    """(rows, cols) of the images a row of `features` pixels holds: --shape RxC, or a square."""
    if spec:
        try:
            r, c = (int(v) for v in spec.lower().split("x"))
        except ValueError:
            fail(f"--shape {spec}: expected ROWSxCOLS, e.g. 28x28")
        if r * c != features:
            fail(f"--shape {spec}: {r * c} pixels, but the rows have {features} features")
        return r, c
    side = int(round(features ** 0.5))
    if side * side != features:
        fail(f"{features} features are not a square image: give --shape ROWSxCOLS")
    return side, side


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
