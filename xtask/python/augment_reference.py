"""NumPy/SciPy reference for Keras' ImageDataGenerator transform (biotasks::data::KerasAugment).

Run through `cargo xtask validate` (or directly:
`python3 xtask/python/augment_reference.py crates/biotasks/tests/fixtures/augment`).

Upstream (`CIFAR10_VGG16Schizo200921act.py`, September 2020, TF 2.3) augments with
`tf.keras.preprocessing.image.ImageDataGenerator`, which is keras-preprocessing 1.1.x. Its
`apply_transform` for GIVEN parameters is reimplemented below from that version's
`affine_transformations.py`, step for step, with the same NumPy/SciPy calls and dtypes:

1. `apply_affine_transform` (row axis 0, column axis 1, channels last):
   matrix = rotation(theta in degrees) @ shift(tx rows, ty columns) @ zoom(zx rows, zy columns),
   each factor only when it is not the identity; then `transform_matrix_offset_center` with
   o = (h/2 + 0.5, w/2 + 0.5) (upstream's centre, half a pixel off the geometric one);
   every channel through `scipy.ndimage.affine_transform(channel, M[:2, :2], M[:2, 2],
   order=1, mode='nearest', cval=0)` on the float32 image (float32 out);
2. `apply_channel_shift`: one intensity added to every channel, then clipped to the min and
   max of the WHOLE image (np.min(x), np.max(x) over all channels; float32 arithmetic);
3. `flip_axis` on the columns (horizontal flip), then on the rows (vertical flip).

The random draws of `get_random_transform` are not reproduced here (the Rust side draws from
its own seeded stream; docs/upstream-differences.md). Cases are small images of values k/255
(as the script's `images / 255.0` cast to float32) and non-square and odd sizes, with fixed
parameters that cover each factor alone, all together, shifts and zooms that sample far outside
the image (the 'nearest' fill) and the channel-shift clip at both ends.

Writes into OUT_DIR:
  cases.json          the cases: name, shape (c, h, w), theta, tx, ty, zx, zy,
                      channel_shift (null = none), flip_horizontal, flip_vertical
  input_<name>.npy    float32 (c, h, w) input in [0, 1]
  output_<name>.npy   float32 (c, h, w) what Keras' apply_transform returns, as (c, h, w)
"""
import json
import os
import sys

import numpy as np
from scipy import ndimage

# name, (c, h, w), theta, tx, ty, zx, zy, channel shift, flip h, flip v
CASES = [
    ("identity", (3, 6, 5), 0.0, 0.0, 0.0, 1.0, 1.0, None, False, False),
    ("rotate", (3, 8, 8), 17.0, 0.0, 0.0, 1.0, 1.0, None, False, False),
    ("rotate_odd", (1, 7, 9), -19.5, 0.0, 0.0, 1.0, 1.0, None, False, False),
    ("shift", (3, 8, 8), 0.0, 1.3, -1.7, 1.0, 1.0, None, False, False),
    ("shift_far", (2, 6, 7), 0.0, -5.5, 8.25, 1.0, 1.0, None, False, False),
    ("zoom", (3, 8, 8), 0.0, 0.0, 0.0, 0.85, 1.15, None, False, False),
    ("flip_h", (3, 5, 6), 0.0, 0.0, 0.0, 1.0, 1.0, None, True, False),
    ("flip_v", (2, 5, 6), 0.0, 0.0, 0.0, 1.0, 1.0, None, False, True),
    ("channel_up", (3, 6, 6), 0.0, 0.0, 0.0, 1.0, 1.0, 0.17, False, False),
    ("channel_down", (3, 6, 6), 0.0, 0.0, 0.0, 1.0, 1.0, -0.2, False, False),
    ("all", (3, 8, 8), -12.5, -1.2, 1.6, 1.1, 0.9, 0.13, True, False),
    ("all_cifar", (3, 32, 32), 19.9, 6.1, -3.3, 0.81, 1.19, -0.07, True, True),
]


def transform_matrix_offset_center(matrix, x, y):
    o_x = float(x) / 2 + 0.5
    o_y = float(y) / 2 + 0.5
    offset_matrix = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset_matrix = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return np.dot(np.dot(offset_matrix, matrix), reset_matrix)


def apply_affine_transform(x, theta, tx, ty, zx, zy):
    """keras-preprocessing 1.1.x, row_axis=0, col_axis=1, channel_axis=2, 'nearest', order 1."""
    transform_matrix = None
    if theta != 0:
        theta = np.deg2rad(theta)
        transform_matrix = np.array([[np.cos(theta), -np.sin(theta), 0],
                                     [np.sin(theta), np.cos(theta), 0],
                                     [0, 0, 1]])
    if tx != 0 or ty != 0:
        shift_matrix = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
        transform_matrix = shift_matrix if transform_matrix is None else np.dot(transform_matrix, shift_matrix)
    if zx != 1 or zy != 1:
        zoom_matrix = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
        transform_matrix = zoom_matrix if transform_matrix is None else np.dot(transform_matrix, zoom_matrix)
    if transform_matrix is not None:
        h, w = x.shape[0], x.shape[1]
        transform_matrix = transform_matrix_offset_center(transform_matrix, h, w)
        x = np.rollaxis(x, 2, 0)
        final_affine_matrix = transform_matrix[:2, :2]
        final_offset = transform_matrix[:2, 2]
        channel_images = [ndimage.affine_transform(x_channel, final_affine_matrix, final_offset,
                                                   order=1, mode="nearest", cval=0.0)
                          for x_channel in x]
        x = np.stack(channel_images, axis=0)
        x = np.rollaxis(x, 0, 3)
    return x


def apply_channel_shift(x, intensity, channel_axis):
    x = np.rollaxis(x, channel_axis, 0)
    min_x, max_x = np.min(x), np.max(x)
    channel_images = [np.clip(x_channel + intensity, min_x, max_x) for x_channel in x]
    x = np.stack(channel_images, axis=0)
    return np.rollaxis(x, 0, channel_axis + 1)


def flip_axis(x, axis):
    x = np.asarray(x).swapaxes(axis, 0)
    x = x[::-1, ...]
    return x.swapaxes(0, axis)


def apply_transform(x, theta, tx, ty, zx, zy, shift, flip_h, flip_v):
    """ImageDataGenerator.apply_transform on one channels-last float32 image."""
    x = apply_affine_transform(x, theta, tx, ty, zx, zy)
    if shift is not None:
        x = apply_channel_shift(x, shift, 2)
    if flip_h:
        x = flip_axis(x, 1)
    if flip_v:
        x = flip_axis(x, 0)
    return x


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.RandomState(11)
    cases = []
    for name, (c, h, w), theta, tx, ty, zx, zy, shift, flip_h, flip_v in CASES:
        # Byte values scaled as the script does (uint8 / 255.0, then float32); a few pixels at 0
        # and 255 so that the channel-shift clip meets both ends.
        img = rng.randint(0, 256, size=(h, w, c)).astype(np.uint8)
        img[0, 0, 0], img[-1, -1, -1] = 0, 255
        x = (img / 255.0).astype("float32")
        y = apply_transform(x.copy(), theta, tx, ty, zx, zy, shift, flip_h, flip_v)
        if y.dtype != np.float32:
            sys.exit(f"{name}: Keras' transform returned {y.dtype}, expected float32")
        np.save(os.path.join(out_dir, f"input_{name}.npy"), np.ascontiguousarray(np.moveaxis(x, 2, 0)))
        np.save(os.path.join(out_dir, f"output_{name}.npy"), np.ascontiguousarray(np.moveaxis(y, 2, 0)))
        cases.append({
            "name": name, "shape": [c, h, w], "theta": theta, "tx": tx, "ty": ty, "zx": zx, "zy": zy,
            "channel_shift": shift, "flip_horizontal": flip_h, "flip_vertical": flip_v,
        })
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: augment_reference.py OUT_DIR")
    main(sys.argv[1])
