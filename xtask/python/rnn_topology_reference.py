#!/usr/bin/env python3
"""Reference fixtures for ``bio2art::topology`` (``random_w`` and ``remap_w``).

The two functions of ``bio_rnn_mem`` that the Rust module reproduces, written with NumPy only
(the originals use torch tensors, but only for indexing):

* ``rand_net(A)`` (``networkmetrics.py``, default ``freeze_diag=True``): when ``A == A.T``
  exactly, the strict lower triangle (``np.where`` of the zeros of ``triu(ones, 0)``, row-major)
  is permuted with ``np.random.permutation`` and mirrored; otherwise all off-diagonal entries,
  zeros included (row-major), are permuted.  The diagonal is kept.
* ``map_weights_to_template(w_template, w_to_map)`` (``auxfun.py``): positions where the template
  is nonzero (``torch.where``, row-major), template values sorted descending, init values sorted
  descending, k-th largest init value to the k-th largest template position.  Upstream uses the
  unstable ``torch.sort``; here the sort is stable (``kind='stable'``), the tie order that the
  Rust code documents: among equal template values the earlier row-major position of PyTorch's
  ``weight_hh_l0`` gets the larger init value.

Matrices are in upstream's layout (PyTorch ``weight_hh_l0[to, from]`` = bio2art ``W``, which
upstream writes without a transpose).

Writes ``<out>/cases.json`` plus ``<case>_in.npy`` / ``<case>_out.npy`` (and ``<case>_init.npy``
for remap cases).  Usage (from the repository root)::

    python3 xtask/python/rnn_topology_reference.py crates/bio2art/connectomes \
        crates/bio2art/tests/fixtures crates/bio2art/tests/fixtures/topology
"""
import json
import pathlib
import sys

import numpy as np


def rand_net(a):
    n = a.shape[0]
    if np.all(a == a.T):
        idx = np.where(np.triu(np.ones((n, n)), 0) == 0)
        values = a[idx]
        values = values[np.random.permutation(len(values))]
        x = np.zeros((n, n))
        x[idx] = values
        x = x + x.T
        return x + np.diagflat(np.diag(a))
    idx = np.where(np.diagflat(np.ones(n)) == 0)
    values = a[idx]
    values = values[np.random.permutation(len(values))]
    x = np.zeros((n, n))
    x[idx] = values
    return x + np.diagflat(np.diag(a))


def map_weights_to_template(template, init):
    out = np.zeros(template.shape, dtype=init.dtype)
    idx = np.where(template != 0)
    order_t = np.argsort(-template[idx], kind="stable")
    sorted_init = np.sort(init[idx], kind="stable")[::-1]
    out[idx[0][order_t], idx[1][order_t]] = sorted_init
    return out


def save(out, name, arr):
    np.save(out / name, np.ascontiguousarray(arr))


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    connectomes, bio2art_fixtures, out = (pathlib.Path(p) for p in sys.argv[1:])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(77)  # only to draw the small synthetic matrices
    sym = rng.uniform(0, 1, (9, 9)) * (rng.uniform(0, 1, (9, 9)) < 0.5)
    sym = np.triu(sym, 1)
    sym = sym + sym.T + np.diagflat(rng.uniform(0.5, 1, 9))  # nonzero diagonal must stay
    directed = rng.uniform(0, 1, (8, 8)) * (rng.uniform(0, 1, (8, 8)) < 0.4)
    directed[3, 3] = 2.5
    random_cases = [
        ("human_symmetric", np.asarray(np.load(connectomes / "C_Human_Betzel_Normalized.npy")), 11),
        ("macaque_directed", np.asarray(np.load(connectomes / "C_Macaque_Normalized.npy")), 5),
        ("gamanut_x3_neurons", np.load(bio2art_fixtures / "gamanut_x3_sparse_nodiag_W.npy"), 2024),
        ("synthetic_symmetric_diag", sym, 0),
        ("synthetic_directed", directed, 123456),
    ]
    manifest = {"random_w": [], "remap_w": []}
    for name, a, seed in random_cases:
        a = np.ascontiguousarray(a, dtype=np.float64)
        np.random.seed(seed)
        x = rand_net(a)
        save(out, f"random_{name}_in.npy", a)
        save(out, f"random_{name}_out.npy", x)
        manifest["random_w"].append(
            {"name": name, "seed": seed, "n": int(a.shape[0]), "symmetric": bool(np.all(a == a.T))})
    # Remap: templates with many ties (rand_partition=False blocks) and without.
    remap_cases = [
        ("gamanut_x3_ties", np.load(bio2art_fixtures / "gamanut_x3_sparse_nodiag_W.npy"), 3),
        ("macaque_regions", np.asarray(np.load(connectomes / "C_Macaque_Normalized.npy")), 4),
        ("synthetic_directed", directed, 5),
    ]
    for name, t, seed in remap_cases:
        t = np.ascontiguousarray(t, dtype=np.float64)
        n = t.shape[0]
        bound = 1.0 / np.sqrt(n)
        init = np.random.RandomState(seed).uniform(-bound, bound, (n, n)).astype(np.float32)
        x = map_weights_to_template(t, init)
        save(out, f"remap_{name}_in.npy", t)
        save(out, f"remap_{name}_init.npy", init)
        save(out, f"remap_{name}_out.npy", x)
        ties = int((t != 0).sum() - len(np.unique(t[t != 0])))
        manifest["remap_w"].append({"name": name, "n": int(n), "tied_positions": ties})
    (out / "cases.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(random_cases)} random_w and {len(remap_cases)} remap_w cases to {out}")


if __name__ == "__main__":
    main()
