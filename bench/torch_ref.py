#!/usr/bin/python3
"""PyTorch reference for the mpicnn benchmarks: the same nets, batch and
optimizer (SGD, momentum 0.9) on random data, on the same cores.

    /usr/bin/python3 bench/torch_ref.py steps [--threads T] [--batch B] [--seconds S]
    /usr/bin/python3 bench/torch_ref.py ddp   [--batch B] [--seconds S]   (2 processes x 1 thread, gloo)
    /usr/bin/python3 bench/torch_ref.py fmnist-to-91 [--threads T]        (time to 91% test accuracy)

Prints one line per measurement in the same form as mpicnn-bench."""
import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


def fmnist_ref():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def cifar3():
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.ReLU(),
        nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 32 * 32, 10))


NETS = {"fmnist-ref": (fmnist_ref, (1, 28, 28)), "cifar-3layer": (cifar3, (3, 32, 32))}


def run_steps(name, batch, seconds, rank=0, world=1):
    make, shape = NETS[name]
    torch.manual_seed(1)
    net = make()
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
    lossf = nn.CrossEntropyLoss()
    x = torch.randn(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    steps, warm = 0, 3
    t0 = time.perf_counter()
    while True:
        if steps == warm:
            if world > 1:
                dist.barrier()
            t0 = time.perf_counter()
        opt.zero_grad()
        loss = lossf(net(x), y)
        loss.backward()
        opt.step()
        steps += 1
        done = torch.tensor([1 if steps > warm and time.perf_counter() - t0 >= seconds else 0])
        if world > 1:
            dist.broadcast(done, 0)
        if done.item():
            break
    t = time.perf_counter() - t0
    return (steps - warm) * batch * world / t


def ddp_worker(rank, world, name, batch, seconds, q):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29533"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    ips = run_steps(name, batch, seconds, rank, world)
    if rank == 0:
        q.put(ips)
    dist.destroy_process_group()


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fmnist_to_91(threads, batch, target, max_epochs):
    """The same net and optimizer as jobs/fashion-mnist.ini; stops at the
    first epoch whose test accuracy reaches the target."""
    d = "/usr/share/datasets/fashion-mnist"
    xtr = load_idx(f"{d}/train-images-idx3-ubyte.gz").astype(np.float32) / 255
    ytr = load_idx(f"{d}/train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = load_idx(f"{d}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255
    yte = load_idx(f"{d}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    m, s = xtr.mean(), xtr.std()
    xtr = torch.from_numpy((xtr - m) / s)[:, None]
    xte = torch.from_numpy((xte - m) / s)[:, None]
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    torch.manual_seed(1)
    torch.set_num_threads(threads)
    net = fmnist_ref()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    lossf = nn.CrossEntropyLoss()
    train_time = 0.0
    for epoch in range(1, max_epochs + 1):
        t = time.perf_counter()
        net.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            lossf(net(xtr[idx]), ytr[idx]).backward()
            opt.step()
        train_time += time.perf_counter() - t
        net.eval()
        with torch.no_grad():
            acc = (net(xte).argmax(1) == yte).float().mean().item()
        print(f"pytorch epoch {epoch}: test accuracy {acc:.4f}, training time so far {train_time:.1f} s",
              flush=True)
        if acc >= target:
            print(f"pytorch: {target:.2f} reached after {epoch} epochs, {train_time:.1f} s of training")
            return
    print(f"pytorch: {target:.2f} not reached in {max_epochs} epochs ({train_time:.1f} s)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["steps", "ddp", "fmnist-to-91"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--epochs", type=int, default=15)
    a = ap.parse_args()
    if a.mode == "steps":
        torch.set_num_threads(a.threads)
        for name in NETS:
            ips = run_steps(name, a.batch, a.seconds)
            print(f"pytorch {name:13s} 1 process x {a.threads} thread{'s' if a.threads > 1 else ' '}, "
                  f"batch {a.batch}: {ips:8.0f} images/s")
    elif a.mode == "ddp":
        for name in NETS:
            q = mp.get_context("spawn").SimpleQueue()
            mp.spawn(ddp_worker, args=(2, name, a.batch, a.seconds, q), nprocs=2, join=True)
            print(f"pytorch {name:13s} DDP 2 processes x 1 thread, batch {a.batch}/process: "
                  f"{q.get():8.0f} images/s")
    else:
        fmnist_to_91(a.threads, a.batch, 0.91, a.epochs)


if __name__ == "__main__":
    sys.exit(main())
