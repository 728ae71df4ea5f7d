#!/usr/bin/python3
"""The PyTorch side of scripts/bench/tta.sh: datasets/configs/fashion_mnist_fast.ini's recipe in
PyTorch, one thread, timed from the script's start (reading the gzipped IDX files included) to
the first evaluation with test accuracy >= the target: Linear-BatchNorm1d-ReLU-Dropout(0.1)
twice (784-256-128), a Linear to 10 logits, CrossEntropyLoss(label_smoothing=0.1), AdamW
(lr 0.004, weight_decay 0.01), OneCycleLR(max_lr 0.004) stepped per batch, shuffled batches of
128 by indexing in-memory tensors, the test set evaluated after every epoch. Prints one line:
TTA seed=S seconds=T|nan epoch=E best=B.

    tta_torch.py SEED [EPOCHS] [TARGET]        (defaults 10 and 0.90)
"""
import gzip
import sys
import time

import numpy as np

T0 = time.monotonic()
try:
    import torch
except ImportError:
    print("SKIP: PyTorch is not installed (apt-get install python3-torch)")
    sys.exit(77)

FM = "/usr/share/datasets/fashion-mnist/"


def idx(name, offset):
    with gzip.open(FM + name, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    seed = int(sys.argv[1])
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    target = float(sys.argv[3]) if len(sys.argv) > 3 else 0.90
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    x = torch.from_numpy(idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255.0)
    y = torch.from_numpy(idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64))
    xt = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255.0)
    yt = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64))
    layers = []
    for a, b in ((784, 256), (256, 128)):
        layers += [torch.nn.Linear(a, b), torch.nn.BatchNorm1d(b), torch.nn.ReLU(), torch.nn.Dropout(0.1)]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(128, 10))
    batch, n = 128, x.shape[0]
    steps = (n + batch - 1) // batch
    opt = torch.optim.AdamW(model.parameters(), lr=0.004, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.004, total_steps=epochs * steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    best, reached = 0.0, None
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n)
        for b in range(0, n, batch):
            i = order[b:b + batch]
            loss = loss_fn(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            acc = sum(int((model(xt[b:b + 1000]).argmax(1) == yt[b:b + 1000]).sum())
                      for b in range(0, xt.shape[0], 1000)) / xt.shape[0]
        best = max(best, acc)
        if acc >= target:
            reached = (time.monotonic() - T0, epoch)
            break
    print(f"TTA seed={seed} seconds={reached[0] if reached else float('nan'):.2f} "
          f"epoch={reached[1] if reached else '-'} best={best:.4f}")


if __name__ == "__main__":
    main()
