#!/bin/sh
# test_pool_torch.sh - `mpicnn op maxpool | avgpool`, forward and
# backward, against PyTorch's torch.nn.functional.max_pool2d and
# avg_pool2d (in double) with ceil_mode, padding and count_include_pad:
# every output and input gradient within 1e-6. The inputs are float32
# values at least 1e-3 apart, so that the max pools' arg-maxes agree.
# Without torch for /usr/bin/python3: SKIP (exit 77).
set -u
MPICNN=${MPICNN:-src/mpicnn}
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "SKIP: torch is not available to $PY"
    exit 77
fi
d=$(mktemp -d /tmp/mpicnn-pool-torch-XXXXXX) || exit 99
trap 'rm -rf "$d"' EXIT INT TERM

MPICNN="$MPICNN" "$PY" - "$d" <<'EOF'
import os, subprocess, sys
import torch
import torch.nn.functional as F

d = sys.argv[1]
MPICNN = os.path.abspath(os.environ["MPICNN"])
torch.manual_seed(7)
TOL = 1e-6

def save(name, t):
    with open(f"{d}/{name}", "w") as f:
        f.write("\n".join("%.9g" % v for v in t.flatten().tolist()) + "\n")

def load(name):
    with open(f"{d}/{name}") as f:
        return torch.tensor([float(v) for v in f.read().split()], dtype=torch.float64)

def rand(shape):
    # distinct values in [-1, 1], at least 1e-3 apart: no ties
    n = 1
    for s in shape: n *= s
    v = (torch.randperm(2001)[:n].double() - 1000) / 1000
    return v.float().double().reshape(shape)

failed = 0

def check(what, layer, flags, shape, fwd):
    global failed
    x = rand(shape).requires_grad_(True)
    y = fwd(x)
    dout = rand(tuple(y.shape)) if y.numel() <= 2001 else torch.randn(y.shape).double()
    y.backward(dout)
    save("x", x.detach())
    save("dout", dout)
    cmd = [MPICNN, "op", layer, "--x", "x", "--x-shape", ",".join(map(str, shape)),
           "--out", "out", "--dout", "dout", "--dx", "dx"] + flags
    r = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL {what}: exit {r.returncode}: {r.stderr.strip()}")
        failed += 1
        return
    out, dx = load("out"), load("dx")
    for name, got, want in (("out", out, y.detach().flatten()),
                            ("dx", dx, x.grad.flatten())):
        if got.numel() != want.numel():
            print(f"FAIL {what}: {name} has {got.numel()} values, torch {want.numel()}")
            failed += 1
            continue
        err = (got - want).abs().max().item()
        if err > TOL:
            print(f"FAIL {what}: {name} differs from torch by {err:.3g}")
            failed += 1
            return
    print(f"ok   {what}: out {tuple(y.shape)}")

B = lambda v: "true" if v else "false"
# (input shape, window, stride, pad, ceil_mode)
cases = [((2, 3, 5, 7), (2, 2), 2, 0, True),    # partial windows at the edge
         ((2, 2, 6, 7), (3, 3), 2, 1, True),    # padding and ceil
         ((1, 2, 7, 6), (3, 3), 2, 1, False),   # padding, floor
         ((1, 3, 7, 8), (2, 3), 3, 1, True),    # stride != size
         ((1, 2, 9, 19), (2, 2), 2, 0, True),   # 8-wide rows, partial edges
         ((1, 2, 5, 5), (3, 3), 3, 1, True),    # the last window dropped
         ((1, 2, 4, 6), (2, 2), 1, 1, True),    # overlapping
         ((2, 3, 8, 8), (2, 2), 2, 0, False),   # today's default
         ((1, 1, 9, 9), (3, 3), 3, 0, False)]
for shape, k, s, p, ceil in cases:
    flags = ["--size", f"{k[0]},{k[1]}", "--stride", str(s), "--pad", str(p),
             "--ceil_mode", B(ceil)]
    tag = f"{shape} size {k} stride {s} pad {p} ceil {ceil}"
    check("maxpool " + tag, "maxpool", flags, shape,
          lambda x: F.max_pool2d(x, k, s, p, ceil_mode=ceil))
    for cp in (False, True):
        check(f"avgpool {tag} count_pad {cp}", "avgpool", flags + ["--count_pad", B(cp)],
              shape, lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=ceil,
                                            count_include_pad=cp))
print(f"{failed} failed")
sys.exit(1 if failed else 0)
EOF
