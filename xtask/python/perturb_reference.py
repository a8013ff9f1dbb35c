"""NumPy/SciPy reference for BioNet's ten test-time perturbations (biotasks::perturb).

Run through `cargo xtask validate` (or directly:
`python3 xtask/python/perturb_reference.py crates/biotasks/tests/fixtures/perturb`).

Each function below follows the array operations and dtypes of upstream's
`bionet/preparation.py` (BioNet e3b072a) on the 2-D float32 image in [0, 1] that upstream's
`cifar_wrapper` passes in (`image *= 1/255` on a float32 greyscale image), including where
NumPy promotes to float64 (a float64 level or noise array) and where the wrapper casts back to
float32. The levels come from NumPy's linspace/logspace as upstream's `get_perturbations(11)`
builds them; the stochastic ones draw from `numpy.random.RandomState(seed + level_index)`,
one generator per level shared by the images of a batch in order (upstream's `assess.py`).

One deliberate difference: phase scrambling runs the FFT in float64. Upstream hands a float32
image to `scipy.fftpack.fft2`, which then computes in complex64; the float32 result is
written too (`phase_float32_max_abs_diff` in cases.json) so the size of that difference is on
record.

`--fft-precision-224` instead measures that difference on a 224x224 image and writes nothing;
`--write-224 DIR` writes every perturbation at every level of one 224x224 image to DIR (6 MB, not
committed) for the ignored test `full_size_224_matches_numpy_scipy`.

Writes into OUT_DIR:
  cases.json                        seed, background, image names, phase float32 difference
  input_<set>.npy                   float32 (n, H, W) inputs in [0, 1]
  levels_<slug>.npy                 float64 levels
  <set>_<slug>.npy                  float32 (levels, n, H, W) outputs
"""
import json
import os
import sys

import numpy as np
from scipy import fftpack
from scipy.ndimage import gaussian_filter

LANCZOS_MEAN = 122.61385345458984
SEED = 7
CONTRAST_LEVEL = 1  # upstream config: an int


def levels():
    n = 11
    return [
        ("Uniform", np.linspace(0, 1, n)),
        ("Salt and Pepper", np.linspace(0, 1, n)),
        ("High Pass", np.logspace(2, 0, n)),
        ("Low Pass", np.logspace(0, 2, n)),
        ("Contrast", np.logspace(0, -2, n)),
        ("Phase Scrambling", np.linspace(0, 180, n)),
        ("Darken", np.linspace(0, -1, n)),
        ("Brighten", np.linspace(0, 1, n)),
        ("Rotation", np.array([0, 90, 180, 270], dtype=int)),
        ("Invert", np.array([0, 1], dtype=int)),
    ]


def clip01(a):
    a[a < 0] = 0
    a[a > 1] = 1
    return a


def contrast(img, c):
    # `(1 - c)/2 + img.dot(c)`: dot with a NumPy float64 (or a Python int) promotes to float64.
    out = (1 - c) / 2.0 + img.dot(c)
    return clip01(out)


def uniform(img, w, rng):
    base = contrast(img, CONTRAST_LEVEL)
    out = base + rng.uniform(low=-w, high=w, size=(img.shape[0], img.shape[1]))
    return clip01(out)


def salt_and_pepper(img, p, rng):
    base = contrast(img, CONTRAST_LEVEL)
    u = rng.uniform(size=base.shape)
    salt = (u >= 1 - p / 2).astype(base.dtype)
    pepper = -(u < p / 2).astype(base.dtype)
    return clip01(base + salt + pepper)


def low_pass(img, s, bg):
    out = gaussian_filter(img.astype(np.float64), s, mode="constant", cval=bg).astype(img.dtype)
    return clip01(out)


def high_pass(img, s, bg):
    g = gaussian_filter(img.astype(np.float64), s, mode="constant", cval=bg)
    d = img - g.astype(img.dtype)
    d = d + (bg - np.mean(d, axis=(0, 1)))
    return clip01(d)


def phase_scramble(img, w, rng, fft_dtype=np.float64):
    n = (img.shape[0] - 1) * (img.shape[1] - 1)
    shifts = rng.random(n // 2) - 0.5
    shifts = shifts * 2 * w / 180 * np.pi
    f = fftpack.fftshift(fftpack.fft2(img.astype(fft_dtype)))
    amp, phase = np.abs(f), np.angle(f)
    sub = phase[1:, 1:].flatten()
    m = sub.shape[0]
    sub[: m // 2] += shifts
    sub[m // 2 + 1:] -= shifts
    phase[1:, 1:] = sub.reshape(phase[1:, 1:].shape)
    back = fftpack.ifft2(fftpack.ifftshift(amp * np.exp(1j * phase))).real
    return clip01(back)


def brightness(img, level):
    out = img.copy()
    out += level
    return clip01(out)


def rotate(img, degrees):
    if degrees == 0:
        return img
    if degrees == 90:
        return np.transpose(img, (1, 0))[::-1, :]
    if degrees == 180:
        return img[::-1, ::-1]
    if degrees == 270:
        return np.transpose(img[::-1, :], (1, 0))
    raise ValueError(degrees)


def invert(img, level):
    if level < 0.5:
        return img
    return clip01(1 - img)


def perturb(name, img, level, rng, bg):
    img = img.copy()
    if name == "Uniform":
        out = uniform(img, level, rng)
    elif name == "Salt and Pepper":
        out = salt_and_pepper(img, level, rng)
    elif name == "High Pass":
        out = high_pass(img, level, bg)
    elif name == "Low Pass":
        out = low_pass(img, level, bg)
    elif name == "Contrast":
        out = contrast(img, level)
    elif name == "Phase Scrambling":
        out = phase_scramble(img, level, rng)
    elif name in ("Darken", "Brighten"):
        out = brightness(img, level)
    elif name == "Rotation":
        out = rotate(img, level)
    elif name == "Invert":
        out = invert(img, level)
    else:
        raise ValueError(name)
    # upstream's cifar_wrapper: float64 results are cast to float32
    return np.ascontiguousarray(out).astype(np.float32)


def images():
    """Deterministic test images as uint8, scaled as upstream's wrapper does."""
    yy, xx = np.mgrid[0:16, 0:16]
    gradient = (xx * 13 + yy * 3) % 256
    disk = np.where((yy - 7.5) ** 2 + (xx - 6.0) ** 2 < 30, 230, 20) + ((xx * yy) % 7) * 3
    yy, xx = np.mgrid[0:12, 0:20]
    stripes = 128 + 100 * np.sin(xx * 0.9 + yy * 0.4)
    stripes[0, :] = 0
    stripes[:, -1] = 255
    rescale = np.float32(1 / 255)

    def scale(a):
        return a.astype(np.uint8).astype(np.float32) * rescale

    return {
        "square": np.stack([scale(gradient), scale(disk)]),
        "wide": scale(stripes)[None],
    }


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    bg = LANCZOS_MEAN / 255
    sets = images()
    phase32 = 0.0
    for set_name, batch in sets.items():
        np.save(os.path.join(out_dir, f"input_{set_name}.npy"), batch)
    for name, lv in levels():
        slug = name.replace(" ", "_").lower()
        np.save(os.path.join(out_dir, f"levels_{slug}.npy"), lv.astype(np.float64))
        for set_name, batch in sets.items():
            n, h, w = batch.shape
            if name == "Rotation" and h != w:
                lv_use = [l for l in lv if l in (0, 180)]
            else:
                lv_use = list(lv)
            out = np.zeros((len(lv), n, h, w), np.float32)
            for li, level in enumerate(lv):
                if level not in lv_use:
                    out[li] = np.nan  # 90/270 on a non-square image change its shape: not compared
                    continue
                rng = np.random.RandomState(seed=SEED + li)
                for i in range(n):
                    out[li, i] = perturb(name, batch[i], level, rng, bg)
                if name == "Phase Scrambling":
                    rng = np.random.RandomState(seed=SEED + li)
                    for i in range(n):
                        single = phase_scramble(batch[i].copy(), level, rng, np.float32).astype(np.float32)
                        phase32 = max(phase32, float(np.max(np.abs(single - out[li, i]))))
            np.save(os.path.join(out_dir, f"{set_name}_{slug}.npy"), out)
    cases = {
        "seed": SEED,
        "background": bg,
        "sets": list(sets),
        "phase_float32_max_abs_diff": phase32,
    }
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print(f"perturbation fixtures in {out_dir}; float32 vs float64 phase scrambling: max |diff| {phase32:.3g}")


def image_224():
    """A 224x224 test image with smooth texture and a sharp-edged block, scaled as upstream."""
    rs = np.random.RandomState(3)
    img = gaussian_filter(rs.rand(224, 224), 3)
    img = (img - img.min()) / (img.max() - img.min()) * 200 + 20
    img[60:160, 80:140] = 240
    return img.astype(np.uint8).astype(np.float32) * np.float32(1 / 255)


def write_224(out_dir):
    """Every perturbation at every level on one 224x224 image (too large to commit; compared by
    the ignored test `full_size_224_matches_numpy_scipy`)."""
    os.makedirs(out_dir, exist_ok=True)
    img = image_224()
    np.save(os.path.join(out_dir, "input.npy"), img[None])
    bg = LANCZOS_MEAN / 255
    for name, lv in levels():
        out = [perturb(name, img, level, np.random.RandomState(SEED + li), bg) for li, level in enumerate(lv)]
        np.save(os.path.join(out_dir, name.replace(" ", "_").lower() + ".npy"), np.stack(out))
    print(f"224x224 cases in {out_dir}")


def fft_precision_224():
    """Upstream's float32 (complex64) FFT against our float64 one on a 224x224 image with smooth
    texture and a sharp-edged block, at every level (writes nothing)."""
    img = image_224()
    worst, means = 0.0, []
    for li, w in enumerate(np.linspace(0, 180, 11)):
        a = phase_scramble(img.copy(), w, np.random.RandomState(li), np.float64).astype(np.float32)
        b = phase_scramble(img.copy(), w, np.random.RandomState(li), np.float32).astype(np.float32)
        d = np.abs(a - b)
        worst = max(worst, float(d.max()))
        means.append(float(d.mean()))
    print(f"224x224 phase scrambling, float32 vs float64 FFT: max |diff| {worst:.3g}, mean |diff| {np.mean(means):.3g}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--fft-precision-224"]:
        fft_precision_224()
    elif len(sys.argv) == 3 and sys.argv[1] == "--write-224":
        write_224(sys.argv[2])
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "crates/biotasks/tests/fixtures/perturb")
