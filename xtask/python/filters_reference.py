"""Reference filter banks of BioNet's first layer, in plain NumPy, for the Rust tests.

Independent re-implementation (no OpenCV needed) of what upstream's initialisers compute:

* ``cv2.getGaborKernel(ksize, sigma, theta, lambd, gamma, psi, ktype=CV_64F)``: for integer
  offsets x, y in [-h, h] (h = k // 2), ``xr = x cos(theta) + y sin(theta)``,
  ``yr = -x sin(theta) + y cos(theta)``,
  ``v = exp(ex xr^2 + ey yr^2) cos(2 pi / lambd * xr + psi)`` with ``ex = -0.5 / sigma^2`` and
  ``ey = -0.5 / (sigma / gamma)^2``, stored at ``[h - y, h - x]`` (OpenCV's index flip).
* ``cv2.getGaussianKernel(k, s, CV_64F)``: ``exp(-0.5 / s^2 * (i - (k - 1) / 2)^2)``, divided
  by its sum.
* GaborInitializer: wavelength from sigma and bandwidth b,
  ``lambd = sigma * pi / c * (2^b - 1) / (2^b + 1)``, ``c = sqrt(ln 2 / 2)``; loop order
  sigma -> theta -> b -> gamma -> psi.
* DifferenceOfGaussiansInitializer: for sigma -> gamma: centre = outer(G(sigma), G(sigma)) / sum,
  surround = the same at sigma * gamma; channels [centre - surround, surround - centre].
* LowPassInitializer: outer(G(s), G(s)) / sum per sigma.

Writes ``<name>.npy`` arrays of shape (channels, k, k) to the folder given as the first argument:
float64 for the small banks, float32 (the dtype Keras placed in the layer) for the 63x63 banks.
Run through ``cargo xtask validate``.
"""

import os
import sys

import numpy as np


def gabor_kernel(ksize, sigma, theta, lambd, gamma, psi):
    sigma_x = sigma
    sigma_y = sigma / gamma
    h = ksize // 2
    c, s = np.cos(theta), np.sin(theta)
    ex = -0.5 / (sigma_x * sigma_x)
    ey = -0.5 / (sigma_y * sigma_y)
    cscale = np.pi * 2 / lambd
    k = np.zeros((ksize, ksize), dtype=np.float64)
    for y in range(-h, h + 1):
        for x in range(-h, h + 1):
            xr = x * c + y * s
            yr = -x * s + y * c
            k[h - y, h - x] = np.exp(ex * xr * xr + ey * yr * yr) * np.cos(cscale * xr + psi)
    return k


def gaussian_kernel(k, sigma):
    i = np.arange(k, dtype=np.float64)
    x = i - (k - 1) * 0.5
    t = np.exp(-0.5 / (sigma * sigma) * x * x)
    return t / t.sum()


def calc_lambda(sigma, b):
    p = 2.0**b
    c = np.sqrt(np.log(2) / 2)
    return sigma * np.pi / c * (p - 1) / (p + 1)


def gabor_bank(ksize, sigmas, bs, gammas, thetas, psis):
    out = []
    for sigma in sigmas:
        for theta in thetas:
            for b in bs:
                lambd = calc_lambda(sigma, b)
                for gamma in gammas:
                    for psi in psis:
                        out.append(gabor_kernel(ksize, sigma, theta, lambd, gamma, psi))
    return np.stack(out)


def dog_bank(ksize, sigmas, gammas):
    out = []
    for sigma in sigmas:
        for gamma in gammas:
            gc = gaussian_kernel(ksize, sigma)
            kc = np.outer(gc, gc)
            kc /= kc.sum()
            gs = gaussian_kernel(ksize, sigma * gamma)
            ks = np.outer(gs, gs)
            ks /= ks.sum()
            out.extend([kc - ks, ks - kc])
    return np.stack(out)


def low_pass_bank(ksize, sigmas):
    out = []
    for sigma in sigmas:
        g = gaussian_kernel(ksize, sigma)
        k = np.outer(g, g)
        k /= k.sum()
        out.append(k)
    return np.stack(out)


THETAS = list(np.linspace(0, np.pi, 4, endpoint=False))
BS = list(np.linspace(1, 2.6, 3))
PSIS = [np.pi / 2, 3 * np.pi / 2]
DOG_SIGMAS = [1, 2, 4, 8]
DOG_GAMMAS = [1.6, 1.8, 2.0, 2.2]


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)

    def save(name, arr):
        np.save(os.path.join(out_dir, name + ".npy"), arr)

    # The paper's banks (model.py), as Keras held them (float32).
    save("gabor63_f32", gabor_bank(63, [8], BS, [0.5], THETAS, PSIS).astype(np.float32))
    save("low_pass63_f32", low_pass_bank(63, [1, 2, 4, 8]).astype(np.float32))
    # Combined-trim: DoG 31x31 then Gabor 31x31 (float64, before the cast).
    save("dog31", dog_bank(31, DOG_SIGMAS, DOG_GAMMAS))
    save("gabor31", gabor_bank(31, [8], BS, [0.5], THETAS, PSIS))
    # The banks shrunk by 7 for 32x32 input (--quick): k = 9, sigmas / 7.
    save("gabor9_scaled", gabor_bank(9, [8 / 7], BS, [0.5], THETAS, PSIS))
    save("dog9_scaled", dog_bank(9, [s / 7 for s in DOG_SIGMAS], DOG_GAMMAS))
    # Scalars: the three wavelengths of the paper's bank.
    save("gabor_lambdas", np.array([calc_lambda(8, b) for b in BS]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "crates/biolayers/tests/fixtures/filters")
