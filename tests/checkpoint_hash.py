"""A hash of a run's newest checkpoint: every /model, /optimizer and /ema tensor, for tests
that compare runs bit for bit (imported by the test scripts beside it)."""
import glob
import hashlib
import os

import h5py


def newest_checkpoint(run_dir):
    return sorted(glob.glob(os.path.join(run_dir, "ckpt-*.h5")))[-1]


def fingerprint(run_dir):
    """16 hex digits of SHA-256 over every /model, /optimizer and /ema (the weights' moving
    average) dataset of the newest ckpt-*.h5 and the optimizer's step count."""
    h = hashlib.sha256()
    with h5py.File(newest_checkpoint(run_dir), "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name.split("/")[0] in ("model", "optimizer", "ema"):
                h.update(name.encode())
                h.update(obj[()].tobytes())
        f.visititems(visit)
        if "optimizer" in f and "step" in f["optimizer"].attrs:
            h.update(str(f["optimizer"].attrs["step"]).encode())
    return h.hexdigest()[:16]
