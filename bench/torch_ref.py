#!/usr/bin/python3
"""PyTorch reference for the mpicnn benchmarks: the same nets, batch and
optimizer (SGD, momentum 0.9) on random data, on the same cores.

    /usr/bin/python3 bench/torch_ref.py steps [--threads T] [--batch B] [--seconds S]
    /usr/bin/python3 bench/torch_ref.py ddp   [--batch B] [--seconds S]   (2 processes x 1 thread, gloo)
    /usr/bin/python3 bench/torch_ref.py fmnist-to-91 [--threads T]        (time to 91% test accuracy)
    /usr/bin/python3 bench/torch_ref.py convs [--threads T] [--batch B] [--seconds S] [--cpu-time]
        (ResNet-20's conv layers one by one, as mpicnn-bench --resnet-convs)
    /usr/bin/python3 bench/torch_ref.py resnet20 [--threads T] [--batch B] [--seconds S]
        (whole ResNet-20 training steps, CIFAR and Fashion-MNIST inputs)

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


def cifar_quick():
    """mpicnn-bench's cifar-quick: three 5x5 convs (Caffe's CIFAR-10 quick, 2x2 pools)"""
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.Linear(64, 10))


# only when named (--net), as in mpicnn-bench
NETS_NAMED = {"cifar-quick": (cifar_quick, (3, 32, 32))}

# name, C, H = W, K, kernel, stride, pad, count in a ResNet-20 (bench.c's resnet_convs)
RESNET_CONVS = [
    ("stem", 3, 32, 16, 3, 1, 1, 1), ("s1 3x3", 16, 32, 16, 3, 1, 1, 6),
    ("s2 3x3/2", 16, 32, 32, 3, 2, 1, 1), ("s2 1x1/2", 16, 32, 32, 1, 2, 0, 1),
    ("s2 3x3", 32, 16, 32, 3, 1, 1, 5), ("s3 3x3/2", 32, 16, 64, 3, 2, 1, 1),
    ("s3 1x1/2", 32, 16, 64, 1, 2, 0, 1), ("s3 3x3", 64, 8, 64, 3, 1, 1, 5),
    ("fm stem", 1, 28, 16, 3, 1, 1, 1), ("fm s1 3x3", 16, 28, 16, 3, 1, 1, 6),
    ("fm s2 3x3/2", 16, 28, 32, 3, 2, 1, 1), ("fm s2 1x1/2", 16, 28, 32, 1, 2, 0, 1),
    ("fm s2 3x3", 32, 14, 32, 3, 1, 1, 5), ("fm s3 3x3/2", 32, 14, 64, 3, 2, 1, 1),
    ("fm s3 1x1/2", 32, 14, 64, 1, 2, 0, 1), ("fm s3 3x3", 64, 7, 64, 3, 1, 1, 5),
]


CLOCK = [time.perf_counter]


def timed(fn, seconds):
    """Seconds per call of fn, over at least `seconds` and 3 calls, by
    CLOCK[0]: the wall clock, or the process's CPU time (--cpu-time)."""
    clock = CLOCK[0]
    fn()
    reps, t0 = 0, clock()
    while reps < 3 or clock() - t0 < seconds:
        fn()
        reps += 1
    return (clock() - t0) / reps


def run_convs(batch, seconds):
    """Forward, and backward to the weights and (but for a stem) the input."""
    sums = [[0.0, 0.0], [0.0, 0.0]]
    print(f"{'layer':12s} {'C':>4s} {'HW':>4s} {'K':>4s} {'k/s':>6s} {'fwd ms':>9s} {'bwd ms':>9s}")
    for name, c, hw, k, ks, s, p, count in RESNET_CONVS:
        torch.manual_seed(1)
        conv = nn.Conv2d(c, k, ks, stride=s, padding=p)
        x = torch.randn(batch, c, hw, hw, requires_grad=c > 3)
        y = conv(x)
        dy = torch.randn_like(y)
        tf = timed(lambda: conv(x), seconds / 2)

        def fwd_bwd():
            conv(x).backward(dy)
        tb = timed(fwd_bwd, seconds / 2) - tf
        fm = hw in (28, 14, 7)
        sums[fm][0] += count * tf
        sums[fm][1] += count * tb
        print(f"{name:12s} {c:4d} {hw:4d} {k:4d} {ks:4d}/{s} {tf * 1e3:9.3f} {tb * 1e3:9.3f}")
    print(f"pytorch ResNet-20 convs, CIFAR: fwd {sums[0][0] * 1e3:.2f} ms, bwd {sums[0][1] * 1e3:.2f} ms"
          f" a step; Fashion-MNIST: fwd {sums[1][0] * 1e3:.2f} ms, bwd {sums[1][1] * 1e3:.2f} ms")


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + self.short(x))


def resnet20(cin):
    layers = [nn.Conv2d(cin, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    c = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for b in range(3):
            layers.append(Block(c, cout, stride if b == 0 else 1))
            c = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


NETS_RESNET = {"resnet20-fmnist": (lambda: resnet20(1), (1, 28, 28)),
               "resnet20-cifar": (lambda: resnet20(3), (3, 32, 32))}
# the whole-step comparison (steps, ddp) covers every net of mpicnn-bench
NETS.update(NETS_RESNET)


def run_steps(name, batch, seconds, rank=0, world=1):
    make, shape = {**NETS, **NETS_NAMED}[name]
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
    ap.add_argument("mode", choices=["steps", "ddp", "fmnist-to-91", "convs", "resnet20"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--net", choices=list(NETS) + list(NETS_NAMED),
                    help="steps, ddp: this net only (cifar-quick only when named)")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--cpu-time", action="store_true",
                    help="convs: time by the process's CPU time (1 thread), as mpicnn-bench --cpu-time")
    a = ap.parse_args()
    if a.cpu_time:
        CLOCK[0] = time.process_time
    names = [a.net] if a.net else list(NETS)
    if a.mode == "steps":
        torch.set_num_threads(a.threads)
        for name in names:
            ips = run_steps(name, a.batch, a.seconds)
            print(f"pytorch {name:13s} 1 process x {a.threads} thread{'s' if a.threads > 1 else ' '}, "
                  f"batch {a.batch}: {ips:8.0f} images/s")
    elif a.mode == "ddp":
        for name in names:
            q = mp.get_context("spawn").SimpleQueue()
            mp.spawn(ddp_worker, args=(2, name, a.batch, a.seconds, q), nprocs=2, join=True)
            print(f"pytorch {name:13s} DDP 2 processes x 1 thread, batch {a.batch}/process: "
                  f"{q.get():8.0f} images/s")
    elif a.mode == "convs":
        torch.set_num_threads(a.threads)
        print(f"pytorch ResNet-20 conv layers, batch {a.batch}, {a.threads} thread(s)")
        run_convs(a.batch, a.seconds)
    elif a.mode == "resnet20":
        torch.set_num_threads(a.threads)
        for name in NETS_RESNET:
            ips = run_steps(name, a.batch, a.seconds)
            print(f"pytorch {name:15s} 1 process x {a.threads} thread{'s' if a.threads > 1 else ' '}, "
                  f"batch {a.batch}: {ips:8.0f} images/s")
    else:
        fmnist_to_91(a.threads, a.batch, 0.91, a.epochs)


if __name__ == "__main__":
    sys.exit(main())
