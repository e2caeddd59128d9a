#!/usr/bin/python3
"""PyTorch reference for `make bench`: the same four nets as configs/mnist_*.yaml,
trained for one full epoch on MNIST already in memory, then inference on the test set.

Prints one JSON object: train_images_per_s, infer_images_per_s, peak_rss_mb.
Run under Debian's PyTorch (/usr/bin/python3, package python3-torch) with
OMP_NUM_THREADS=N OPENBLAS_NUM_THREADS=1 (the fair setting on these machines:
OpenBLAS threads inside OpenMP threads oversubscribe the cores).
"""
import argparse
import json
import resource
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def make_net(name):
    if name == "dense":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),
                             nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    if name == "one_conv":
        return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(8 * 13 * 13, 64), nn.ReLU(), nn.Linear(64, 10))
    if name == "two_conv":
        return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(16 * 5 * 5, 64), nn.ReLU(), nn.Linear(64, 10))
    if name == "two_conv_bn":  # configs/mnist_two_conv_bn.yaml
        return nn.Sequential(nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(16 * 5 * 5, 128, bias=False), nn.BatchNorm1d(128), nn.ReLU(),
                             nn.Dropout(0.3), nn.Linear(128, 10))
    raise SystemExit("unknown net " + name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default="data/mnist")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    xtr = torch.from_numpy(read_idx(args.data + "/train-images-idx3-ubyte").astype(np.float32) / 255).unsqueeze(1)
    ytr = torch.from_numpy(read_idx(args.data + "/train-labels-idx1-ubyte").astype(np.int64))
    xte = torch.from_numpy(read_idx(args.data + "/t10k-images-idx3-ubyte").astype(np.float32) / 255).unsqueeze(1)
    net = make_net(args.net)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    perm = torch.randperm(xtr.shape[0])
    t0 = time.perf_counter()
    for i in range(0, xtr.shape[0], args.batch):
        idx = perm[i:i + args.batch]
        opt.zero_grad()
        loss = F.cross_entropy(net(xtr[idx]), ytr[idx])
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t0
    net.eval()  # batch norm's running statistics, no dropout
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, xte.shape[0], 1000):
            net(xte[i:i + 1000]).argmax(1)
    infer_s = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"train_images_per_s": xtr.shape[0] / train_s,
                      "infer_images_per_s": xte.shape[0] / infer_s,
                      "peak_rss_mb": rss, "final_loss": float(loss)}))


if __name__ == "__main__":
    main()
