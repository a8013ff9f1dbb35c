#!/usr/bin/env python3
"""PyTorch half of benches/rnn_epoch.sh: one training epoch of upstream's bio-instantiated RNN.

Model and step as ``bio_rnn_mem`` (``rnnmodels.ModelBio`` + ``modeltraineval``): ``nn.RNN(in, H,
batch_first=True, nonlinearity='relu')`` with zero h0, ``nn.Linear(H, out)`` (+ ``LogSoftmax`` and
``NLLLoss`` for nback, ``MSELoss`` for seq_mem) on the rows whose target is nonzero, float32,
``weight_hh_l0`` zeroed off the topology at init and its gradient zeroed there after every
backward, Adam lr 1e-4.  Lean like the anchor's re-implementation: pre-batched tensors (no
DataLoader), the zero-index computed once.  The data, batches and mask come from
``cargo xtask bench-rnn --export DIR`` (mask.npy in PyTorch's [to, from] layout), so both sides
train on the same inputs and topology.

Prints one JSON line: median/min/max epoch wall time (ms) over --epochs timed epochs after a warm-up,
and the mean CPU time per epoch (all threads; robust to a loaded machine at one thread).
"""
import argparse
import json
import time

import numpy as np
import torch
from torch import nn


class ModelBio(nn.Module):
    def __init__(self, in_dim, hidden, out_dim, mask):
        super().__init__()
        self.rnn = nn.RNN(in_dim, hidden, 1, batch_first=True, nonlinearity="relu")
        with torch.no_grad():
            self.rnn.weight_hh_l0[mask == 0] = 0.0
        self.fc = nn.Linear(hidden, out_dim)
        self.out_dim = out_dim
        self.hidden = hidden
        self.softmax = nn.LogSoftmax(dim=1) if out_dim > 1 else None

    def forward(self, x):
        h0 = torch.zeros(1, x.size(0), self.hidden)
        out, _ = self.rnn(x, h0)
        out = self.fc(out.contiguous().view(-1, self.hidden))
        return self.softmax(out) if self.softmax is not None else out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="folder written by cargo xtask bench-rnn --export")
    p.add_argument("--task", default="seq_mem")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    mask = torch.from_numpy(np.load(f"{a.data}/mask.npy").astype(np.float32))
    x = torch.from_numpy(np.load(f"{a.data}/x.npy"))
    y = torch.from_numpy(np.load(f"{a.data}/y.npy"))
    n, steps, in_dim = x.shape
    hidden = mask.shape[0]
    out_dim = 1 if a.task == "seq_mem" else 3
    model = ModelBio(in_dim, hidden, out_dim, mask)
    criterion = nn.MSELoss() if out_dim == 1 else nn.NLLLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    zero_idx = torch.where(mask == 0)
    batches = []
    for s in range(0, n, a.batch):
        xb = x[s:s + a.batch].contiguous()
        yb = y[s:s + a.batch].reshape(-1)
        keep = torch.where(yb != 0)[0]
        yt = yb[keep].reshape(-1, 1) if out_dim == 1 else yb[keep].long()
        batches.append((xb, keep, yt))
    times = []
    last = float("nan")
    cpu_start = 0.0
    for epoch in range(a.epochs + 1):
        if epoch == 1:
            cpu_start = time.process_time()
        start = time.perf_counter()
        total = 0.0
        model.train()
        for xb, keep, yt in batches:
            opt.zero_grad()
            out = model(xb)
            loss = criterion(out[keep], yt)
            loss.backward()
            model.rnn.weight_hh_l0.grad[zero_idx] = 0.0
            opt.step()
            total += loss.item()
        if epoch > 0:
            times.append(time.perf_counter() - start)
        last = total / len(batches)
    cpu_ms = 1e3 * (time.process_time() - cpu_start) / a.epochs
    times.sort()
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "task": a.task, "hidden": hidden, "batch": a.batch, "trials": n, "steps": steps,
        "density": float(mask.mean()), "epochs": a.epochs,
        "median_epoch_ms": 1e3 * times[len(times) // 2], "min_epoch_ms": 1e3 * times[0],
        "max_epoch_ms": 1e3 * times[-1], "cpu_ms_per_epoch": cpu_ms, "last_loss": last,
        "topology_kept": bool((model.rnn.weight_hh_l0.detach()[mask == 0] == 0).all()),
    }))


if __name__ == "__main__":
    main()
