"""PyTorch half of the CIFAR CNN throughput comparison (see cifar_throughput.sh).

The network as the original PyTorch-style code runs it: a masked layer multiplies, then runs
the dense op (`F.linear(x, W * mask, b)`, `F.conv2d(x, W * mask, b)`, upstream's mLinear /
mConv2d). Random input (N, 3, 32, 32), batch 32, RMSprop lr 1e-4, cross-entropy.
--net schizo-cifar: dense vs the 2304->512 layer with the diagonal band mask r = 0.5.
--net mouse-cifar: dense vs convolutions 2-4 with 2d masks w = 0.5 (grids 4x8, 8x8).
The two settings are interleaved per repetition; one JSON line per setting with the median
images/s. --device cuda runs it on the GPU (the masks and data moved there; each timed block
ends with a synchronisation), for benches/gpu_run.sh.
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from masks import mask2d


def band_mask(nx, ny, r):
    """The diagonal mask |x - rxy*y| < hw in (in, out) layout, returned as (out, in)."""
    h = (nx * ny / np.sqrt(nx * nx + ny * ny)) * (1 - np.sqrt(r))
    rxy = (nx - 1) / (ny - 1)
    hw = h * np.sqrt(rxy * rxy + 1)
    x = np.arange(nx)[:, None]
    y = np.arange(ny)[None, :]
    return torch.tensor((np.abs(x - rxy * y) < hw).astype(np.float32).T.copy())


def grid(n):
    """The divisor of n nearest sqrt(n)."""
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: abs(d - n ** 0.5))


class Net(nn.Module):
    def __init__(self, r, w=0.0):
        super().__init__()
        self.c1 = nn.Conv2d(3, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 32, 3)
        self.c3 = nn.Conv2d(32, 64, 3, padding=1)
        self.c4 = nn.Conv2d(64, 64, 3)
        self.fc = nn.Linear(2304, 512)
        self.out = nn.Linear(512, 10)
        self.mask = band_mask(2304, 512, r) if r > 0 else None
        self.drop = nn.Dropout(0.25)
        # Conv weights are (out, in, kh, kw); the mask is (in, out).
        self.cmask = {
            name: torch.tensor(mask2d(c.in_channels, c.out_channels, grid(c.in_channels),
                                      grid(c.out_channels), w).T.copy())[:, :, None, None]
            for name, c in (("c2", self.c2), ("c3", self.c3), ("c4", self.c4))
        } if w > 0 else {}

    def conv(self, name, x):
        c = getattr(self, name)
        if name not in self.cmask:
            return c(x)
        return F.conv2d(x, c.weight * self.cmask[name], c.bias, padding=c.padding)

    def forward(self, x):
        x = self.drop(F.max_pool2d(F.relu(self.conv("c2", F.relu(self.c1(x)))), 2))
        x = self.drop(F.max_pool2d(F.relu(self.conv("c4", F.relu(self.conv("c3", x)))), 2))
        x = torch.flatten(x, 1)
        w = self.fc.weight if self.mask is None else self.fc.weight * self.mask
        x = F.relu(F.linear(x, w, self.fc.bias))
        return self.out(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--net", choices=["schizo-cifar", "mouse-cifar"], default="schizo-cifar")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x = torch.rand(a.batch, 3, 32, 32, device=dev)
    y = torch.arange(a.batch, device=dev) % 10
    runs = []
    settings = [("dense", 0.0), ("r=0.5", 0.5)] if a.net == "schizo-cifar" else [("dense", 0.0), ("w=0.5", 0.5)]
    for label, v in settings:
        net = Net(v) if a.net == "schizo-cifar" else Net(0.0, v)
        net.to(dev)
        if net.mask is not None:
            net.mask = net.mask.to(dev)
        net.cmask = {k: m.to(dev) for k, m in net.cmask.items()}
        runs.append((label, net, torch.optim.RMSprop(net.parameters(), lr=1e-4)))
    times = {r: [] for r, _, _ in runs}
    for rep in range(a.reps + 1):
        for r, net, opt in runs:
            net.train()
            sync()
            t0 = time.perf_counter()
            for _ in range(a.steps):
                opt.zero_grad()
                F.cross_entropy(net(x), y).backward()
                opt.step()
            sync()
            if rep > 0:
                times[r].append(time.perf_counter() - t0)
    for r, _, _ in runs:
        med = float(np.median(times[r]))
        print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "device": a.device,
                          "threads": torch.get_num_threads(),
                          "net": a.net, "setting": r, "batch": a.batch, "images_per_s": a.batch * a.steps / med}))


if __name__ == "__main__":
    main()
