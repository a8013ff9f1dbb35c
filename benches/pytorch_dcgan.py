"""PyTorch half of the DCGAN throughput comparison (see dcgan_throughput.sh).

Upstream's DCGAN (DCGAN_AFHQcat_240805b_git.py, the mouse experiment) as PyTorch runs it:
generator Linear(100, 4*4*1024) -> BN -> ReLU -> reshape -> ConvTranspose2d 1024->512->256(->128)
(k5, s2, "same") each BN + ReLU -> ConvTranspose2d(3) -> sigmoid; discriminator
4 x spectral_norm(Conv2d 64/128/256/512, k4, s2, "same") + LeakyReLU 0.2 -> flatten ->
Dropout 0.2 -> Linear(1). The mouse setting masks the three ConvTranspose2d stages with 2d
windows w = 0.4 on grids (32,32), (32,16), (16,16), the way upstream's mConvTranspose2d does it
(weight * mask, then the dense op). Adam lr 1e-4, betas (0.5, 0.999), eps 1e-7, BCE on logits.

One step = upstream's Keras train_step: D on [G(z1) (no grad), real] with noisy labels
(fake 1, real 0), then G through the frozen D on fresh z2 with target 0. Images/s counts the
real images (batch per step). Random real images; the two settings are interleaved per
repetition; one JSON line per setting with the median.
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from masks import mask2d


class MConvTranspose2d(nn.ConvTranspose2d):
    """ConvTranspose2d(k5, s2, "same") with an optional 2d mask on its (in, out) weight."""

    def __init__(self, cin, cout, grids=None, w=None):
        super().__init__(cin, cout, 5, stride=2, padding=2, output_padding=1)
        self.mask = None
        if w is not None:
            a, b = grids
            # Upstream's mConvTranspose2d: nx = out channels, ny = in channels.
            m = mask2d(cout, cin, a, b, w)  # (out, in)
            self.mask = torch.tensor(m.T.copy())[:, :, None, None]  # weight is (in, out, kh, kw)

    def forward(self, x):
        w = self.weight if self.mask is None else self.weight * self.mask
        return F.conv_transpose2d(x, w, self.bias, stride=2, padding=2, output_padding=1)


def generator(size, w):
    stages = [(1024, 512, (32, 32)), (512, 256, (32, 16)), (256, 128, (16, 16))]
    stages = stages if size == 64 else stages[:2]
    layers = [nn.Linear(100, 4 * 4 * 1024), nn.BatchNorm1d(4 * 4 * 1024, eps=1e-3, momentum=0.01), nn.ReLU(),
              nn.Unflatten(1, (1024, 4, 4))]
    for cin, cout, grids in stages:
        layers += [MConvTranspose2d(cin, cout, grids, w), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01), nn.ReLU()]
    layers += [nn.ConvTranspose2d(stages[-1][1], 3, 5, stride=2, padding=2, output_padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers)


def discriminator(size):
    layers, cin = [], 3
    for cout in (64, 128, 256, 512):
        layers += [nn.utils.spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        cin = cout
    side = size // 16
    layers += [nn.Flatten(), nn.Dropout(0.2), nn.Linear(side * side * 512, 1)]
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, choices=[32, 64], default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    n = a.batch
    real = torch.rand(n, 3, a.size, a.size)
    runs = []
    for label, w in (("standard", None), ("w=0.4", 0.4)):
        g, d = generator(a.size, w), discriminator(a.size)
        opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.5, 0.999), eps=1e-7)
        opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.5, 0.999), eps=1e-7)
        runs.append((label, g, d, opt_g, opt_d))
    times = {r[0]: [] for r in runs}
    last = {}
    for rep in range(a.reps + 1):
        for label, g, d, opt_g, opt_d in runs:
            g.train()
            d.train()
            t0 = time.perf_counter()
            for _ in range(a.steps):
                with torch.no_grad():
                    fake = g(torch.randn(n, 100))
                x = torch.cat([fake, real])
                t = torch.cat([torch.ones(n, 1), torch.zeros(n, 1)]) + 0.05 * torch.rand(2 * n, 1)
                opt_d.zero_grad()
                d_loss = F.binary_cross_entropy_with_logits(d(x), t)
                d_loss.backward()
                opt_d.step()
                opt_g.zero_grad()
                g_loss = F.binary_cross_entropy_with_logits(d(g(torch.randn(n, 100))), torch.zeros(n, 1))
                g_loss.backward()
                opt_g.step()  # D's gradients from this half are discarded by the next zero_grad
                last[label] = float(d_loss.detach())
            if rep > 0:
                times[label].append(time.perf_counter() - t0)
    for label, *_ in runs:
        med = float(np.median(times[label]))
        print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "net": f"dcgan{a.size}", "setting": label, "batch": n,
                          "images_per_s": n * a.steps / med, "last_loss": last[label]}))


if __name__ == "__main__":
    main()
