#!/usr/bin/python3
"""The PyTorch side of scripts/bench/peers.sh: trains an nn.Sequential MLP on an HDF5 file
(/X float32, /y labels) as the trainer's config describes it, one thread, shuffled
minibatches drawn by indexing the in-memory tensors each epoch (what a course's loop does,
without a DataLoader's worker processes), and prints one line per epoch:
EPOCH n seconds samples_per_s loss.

    peers_torch.py DATA.h5 LAYERS ACTS OUTPUT LOSS OPTIMIZER LR BATCH EPOCHS [fp32|bf16]

bf16 runs the forward pass and the loss under torch.autocast("cpu", dtype=torch.bfloat16):
nn.Linear then computes in oneDNN's bf16 kernels (PyTorch's own mixed precision on a CPU).
Debian's PyTorch computes fp32 nn.Linear through the system BLAS (libblas.so.3, OpenBLAS
here), whose own thread pool torch.set_num_threads does not size: the caller sets
OPENBLAS_NUM_THREADS=1 for a one-thread comparison.
"""
import contextlib
import sys
import time

import h5py
import numpy as np

try:
    import torch
except ImportError:
    print("SKIP: PyTorch is not installed (apt-get install python3-torch)")
    sys.exit(77)


def main():
    data, layers, acts, output, loss_name, opt_name, lr, batch, epochs = sys.argv[1:10]
    precision = sys.argv[10] if len(sys.argv) > 10 else "fp32"
    mixed = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
    torch.set_num_threads(1)
    torch.manual_seed(0)
    widths = [int(w) for w in layers.split(",")]
    modules = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
    seq = []
    for i in range(len(widths) - 1):
        seq.append(torch.nn.Linear(widths[i], widths[i + 1]))
        act = acts if i < len(widths) - 2 else output
        if act != "identity":
            seq.append(modules[act]())
    model = torch.nn.Sequential(*seq)
    with h5py.File(data, "r") as f:
        X = torch.from_numpy(np.asarray(f["X"], dtype=np.float32))
        y = torch.from_numpy(np.asarray(f["y"]))
    if loss_name == "cross_entropy":
        y, loss_fn = y.long().reshape(-1), torch.nn.functional.cross_entropy
    else:
        y, loss_fn = y.float().reshape(-1, 1), torch.nn.functional.binary_cross_entropy
    opt = {"adam": lambda: torch.optim.Adam(model.parameters(), lr=float(lr)),
           "momentum": lambda: torch.optim.SGD(model.parameters(), lr=float(lr), momentum=0.9),
           "sgd": lambda: torch.optim.SGD(model.parameters(), lr=float(lr))}[opt_name]()
    n, b = len(X), int(batch)
    for epoch in range(1, int(epochs) + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        total = 0.0
        for s in range(0, n - b + 1, b):  # full batches, as the trainer's drop_last
            idx = perm[s:s + b]
            xb, yb = X[idx], y[idx]
            opt.zero_grad()
            with mixed():
                out = model(xb)
                if loss_name != "cross_entropy":  # BCE refuses autocast's bf16; PyTorch's own recipe
                    out = out.float()
                loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            total += float(loss)
        dt = time.perf_counter() - t0
        rows = (n // b) * b
        print(f"EPOCH {epoch} {dt:.6f} {rows / dt:.1f} {total / max(n // b, 1):.6f}", flush=True)


if __name__ == "__main__":
    main()
