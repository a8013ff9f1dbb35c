"""Masks of the original layers for the PyTorch side-by-side scripts (numpy only)."""
import numpy as np


def mask2d(nx, ny, a, b, w):
    """Upstream's 2d window mask M[ix, iy] (closed form of the ceil loops, schizo_mouse.md 2.5)."""
    nx2, ny2 = nx // a, ny // b
    ix = np.arange(nx)[:, None]
    iy = np.arange(ny)[None, :]
    ox, oy = (ix % a) / a, (ix // a) / nx2
    kx, ky = iy % b, iy // b
    dy2 = (ky / ny2 - oy) ** 2
    dxw = np.sqrt(np.maximum(w * w - dy2, 0.0))
    keep = (iy < ny2 * b) & (dy2 < w * w) & (ox - dxw <= kx / b) & (kx / b < ox + dxw)
    return keep.astype(np.float32)
