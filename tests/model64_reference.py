#!/usr/bin/env python3
"""model64_reference.py - the exact scores and loss of the model that
tests/make_model64 writes, computed in float64 with numpy, independently
of mpicnn. Run once; its output is the expected values committed in
tests/test_predict_f64.sh.

The weights, the input and the labels follow the formulas of
tests/make_model64.c: element j of tensor t of the layer at position i
is 0.5 sin(0.7 j + 1.3 i + 0.4 t + 0.1) (a running variance v: 0.5 + v^2);
x[j] = 0.5 + 0.45 sin(0.37 j + 0.2), labels 1, 4, 0; the input is
normalised with mean (0.25, 0.5) and std (0.5, 0.25) per channel.
"""
import numpy as np


def tensor(i, t, shape):
    j = np.arange(int(np.prod(shape)), dtype=np.float64)
    return (0.5 * np.sin(0.7 * j + 1.3 * i + 0.4 * t + 0.1)).reshape(shape)


def conv(x, w, b, stride=1, pad=0):
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, k, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            win = xp[:, :, oy * stride:oy * stride + kh, ox * stride:ox * stride + kw]
            y[:, :, oy, ox] = np.einsum("nckl,mckl->nm", win, w) + b
    return y


def maxpool2(x):
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def main():
    n = 3
    x = 0.5 + 0.45 * np.sin(0.37 * np.arange(n * 2 * 6 * 6, dtype=np.float64) + 0.2)
    x = x.reshape(n, 2, 6, 6)
    y = np.array([1, 4, 0])
    mean = np.array([0.25, 0.5]).reshape(1, 2, 1, 1)
    std = np.array([0.5, 0.25]).reshape(1, 2, 1, 1)
    a = (x - mean) / std
    # c1 (layer 0): conv 3 filters 3x3 pad 1
    a = conv(a, tensor(0, 0, (3, 2, 3, 3)), tensor(0, 1, (3,)), pad=1)
    # bn (layer 1): test mode, eps 1e-5 as float32 (the config's float)
    gamma, beta = tensor(1, 0, (3,)), tensor(1, 1, (3,))
    rmean, rvar = tensor(1, 2, (3,)), 0.5 + tensor(1, 3, (3,)) ** 2
    eps = float(np.float32(1e-5))
    a = gamma.reshape(1, 3, 1, 1) * (a - rmean.reshape(1, 3, 1, 1)) / np.sqrt(
        rvar.reshape(1, 3, 1, 1) + eps) + beta.reshape(1, 3, 1, 1)
    a = np.tanh(a)                                   # t (layer 2)
    a = maxpool2(a)                                  # p (layer 3)
    a = conv(a, tensor(4, 0, (4, 3, 2, 2)), tensor(4, 1, (4,)))  # c2 (layer 4)
    a = 1 / (1 + np.exp(-a))                         # s (layer 5)
    a = a.reshape(n, -1)                             # f (layer 6)
    z = a @ tensor(7, 0, (5, 16)).T + tensor(7, 1, (5,))  # fc (layer 7)
    zmax = z.max(axis=1, keepdims=True)
    lse = (zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))).ravel()
    loss = np.mean(lse - z[np.arange(n), y])
    for row in z:
        print(" ".join("%.17g" % v for v in row))
    print("loss %.17g" % loss)


if __name__ == "__main__":
    main()
