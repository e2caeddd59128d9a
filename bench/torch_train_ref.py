#!/usr/bin/python3
"""PyTorch side of docs/accuracy.md's Fashion-MNIST table: configs/fashion_two_conv.yaml's
net and recipe, trained the same way loupe trains it, for one seed.

Same as loupe: conv 8 -> pool -> conv 16 -> pool -> dense 64 -> dense 10 (27,562
parameters), He-normal weights (std sqrt(2 / fan_in)) and zero biases, inputs
(x/255 - mean) / std, a random shift of up to `shift` pixels per image and epoch
(exposed pixels get the value of a blank one), reshuffled every epoch, batches of 64,
SGD with momentum 0.9 and L2 weight_decay, lr per step: LinearLR from 0.001 x lr over
the first epoch, then CosineAnnealingLR to 0 (torch's SequentialLR, stepped every
batch: loupe's cosine schedule with warmup_epochs 1). The random numbers differ, so
runs agree in distribution, not bit for bit.

Prints one JSON object: final and best test accuracy, wall and CPU seconds. Run with Debian's
/usr/bin/python3 (python3-torch), OMP_NUM_THREADS=N OPENBLAS_NUM_THREADS=1.
"""
import argparse
import gzip
import json
import os
import resource
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(dirname, prefix):
    def find(name):
        p = os.path.join(dirname, name)
        return p if os.path.exists(p) else p + ".gz"
    x = read_idx(find(prefix + "-images-idx3-ubyte")).astype(np.float32) / 255
    y = read_idx(find(prefix + "-labels-idx1-ubyte")).astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def two_conv():
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(16 * 5 * 5, 64), nn.ReLU(), nn.Linear(64, 10))
    for m in net:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def shift_batch(x, shift, fill, gen):
    """Each image moved by its own (dy, dx) in [-shift, shift]^2, blanks filled."""
    if shift == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), value=fill)
    d = torch.randint(-shift, shift + 1, (n, 2), generator=gen)
    out = torch.empty_like(x)
    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            idx = ((d[:, 0] == dy) & (d[:, 1] == dx)).nonzero().flatten()
            if len(idx):
                out[idx] = padded[idx, :, shift - dy:shift - dy + h, shift - dx:shift - dx + w]
    return out


def accuracy(net, x, y):
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], 1000):
            correct += (net(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    net.train()
    return correct / x.shape[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--mean", type=float, default=0.2860)
    ap.add_argument("--std", type=float, default=0.3530)
    ap.add_argument("--shift", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    xtr, ytr = load(args.data, "train")
    xte, yte = load(args.data, "t10k")
    xtr = (xtr - args.mean) / args.std
    xte = (xte - args.mean) / args.std
    fill = -args.mean / args.std
    net = two_conv()
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    steps = (xtr.shape[0] + args.batch - 1) // args.batch
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.001, end_factor=1.0, total_iters=steps)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps * (args.epochs - 1))
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[steps])
    best = 0.0
    for epoch in range(args.epochs):
        perm = torch.randperm(xtr.shape[0], generator=gen)
        for i in range(0, xtr.shape[0], args.batch):
            idx = perm[i:i + args.batch]
            opt.zero_grad()
            loss = F.cross_entropy(net(shift_batch(xtr[idx], args.shift, fill, gen)), ytr[idx])
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(net, xte, yte)
        best = max(best, acc)
    print(json.dumps({"seed": args.seed, "epochs": args.epochs, "final_test_acc": acc,
                      "best_test_acc": best, "wall_s": time.perf_counter() - t0,
                      "cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime
                      + resource.getrusage(resource.RUSAGE_SELF).ru_stime}))


if __name__ == "__main__":
    main()
