#!/bin/sh
# test_activations_torch.sh - `mpicnn op` against PyTorch for every
# activation: forward and input gradient of sigmoid, tanh, leaky_relu
# (default and --slope 0.2), elu (default and --alpha 0.5) and gelu
# (--approximate none and tanh) on float32 inputs in [-6, 6] plus 0, +-1e-3
# and +-20, each value within 1e-6 (1 + |torch's|) of torch's in float32.
# (Below x = -4 torch's tanh-form gelu loses its values of about 1e-6 to
# the cancellation in 1 + tanh, which mpicnn avoids: they still agree to
# the bound.)
# A SKIP (exit 77) when no python3 here has torch (Debian: python3-torch).
set -u
MPICNN=${MPICNN:-src/mpicnn}
PY=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
    if "$p" -c 'import torch' >/dev/null 2>&1; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
    echo "SKIP: no python3 with torch (Debian: python3-torch)"
    exit 77
fi
d=$(mktemp -d /tmp/mpicnn-torch-XXXXXX) || exit 99
trap 'rm -rf "$d"' EXIT INT TERM
MPICNN=$MPICNN DIR=$d "$PY" - <<'PYEOF'
import os, subprocess, sys
import torch
import torch.nn.functional as F

prog, d = os.path.abspath(os.environ["MPICNN"]), os.environ["DIR"]
g = torch.Generator().manual_seed(1)
x = torch.rand((4, 3, 5, 7), generator=g, dtype=torch.float32) * 12 - 6
x.view(-1)[:7] = torch.tensor([0.0, 1e-3, -1e-3, 20.0, -20.0, 1.0, -1.0])
dout = torch.rand(x.shape, generator=g, dtype=torch.float32) * 2 - 1

def save(name, t):
    with open(os.path.join(d, name), "w") as f:
        f.write("\n".join("%.9g" % v for v in t.reshape(-1).tolist()) + "\n")

def load(name):
    with open(os.path.join(d, name)) as f:
        return torch.tensor([float(v) for v in f.read().split()], dtype=torch.float32)

save("x", x)
save("dout", dout)
cases = [
    ("sigmoid", [], torch.sigmoid),
    ("tanh", [], torch.tanh),
    ("leaky_relu", [], lambda t: F.leaky_relu(t, 0.01)),
    ("leaky_relu", ["--slope", "0.2"], lambda t: F.leaky_relu(t, 0.2)),
    ("elu", [], F.elu),
    ("elu", ["--alpha", "0.5"], lambda t: F.elu(t, alpha=0.5)),
    ("gelu", [], lambda t: F.gelu(t, approximate="none")),
    ("gelu", ["--approximate", "tanh"], lambda t: F.gelu(t, approximate="tanh")),
]
failed = 0
for op, flags, f in cases:
    what = " ".join([op] + flags)
    cmd = [prog, "op", op, "--x", "x", "--x-shape", "4,3,5,7", "--out", "out",
           "--dout", "dout", "--dx", "dx"] + flags
    r = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
    if r.returncode != 0:
        print("FAIL: %s: exit %d: %s" % (what, r.returncode, r.stderr.strip()))
        failed += 1
        continue
    xt = x.clone().requires_grad_(True)
    y = f(xt)
    y.backward(dout)
    for name, want in (("out", y.detach().reshape(-1)), ("dx", xt.grad.reshape(-1))):
        got = load(name)
        err = (got - want).abs() / (1 + want.abs())
        i = int(err.argmax())
        if not float(err[i]) <= 1e-6:
            print("FAIL: %s %s at [%d] (x = %.9g): mpicnn %.9g, torch %.9g" %
                  (what, name, i, float(x.reshape(-1)[i]), float(got[i]), float(want[i])))
            failed += 1
    if not failed:
        print("ok: %s" % what)
sys.exit(1 if failed else 0)
PYEOF
