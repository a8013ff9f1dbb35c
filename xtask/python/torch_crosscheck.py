"""PyTorch cross-check of the weight export (biolayers::interop, bioexperiments::torch_check).

The two reference models are written here in plain PyTorch, to upstream's definitions
(mouse_pytorch/mouselayer_pytorch2_7.py: mLinear / mConv2d / mConvTranspose2d compute with
`weight * mask`; biornnmemory: nn.RNN + fc with the topology-masked weight_hh_l0). The mask is a
buffer here (upstream's `window` is an nn.Parameter, see docs/upstream-differences.md).

  check DIR    load DIR/<model>.safetensors (trained and exported by Rust) strictly into these
               modules, run DIR/<model>_io.safetensors' x, compare with its y. Exit 1 when the
               largest absolute difference exceeds 1e-5.
  fixture DIR  initialise both models with PyTorch's own initialisers (seed 0), apply the masks
               (taken from DIR/<model>.safetensors as exported by Rust: the same architecture),
               randomise the batch-norm statistics, and write DIR/<model>.safetensors (the
               state_dict) and DIR/<model>_io.safetensors (x and PyTorch's y): the committed
               fixture that the Rust test imports.
"""

import sys

import torch
from torch import nn
from safetensors.torch import load_file, save_file

TOLERANCE = 1e-5


class MLinear(nn.Linear):
    """Upstream mLinear: y = x (W * M)^T + b, the mask M kept beside the weight."""

    def __init__(self, i, o):
        super().__init__(i, o)
        self.register_buffer("mask", torch.ones(o, i))

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MConv2d(nn.Conv2d):
    """Upstream mConv2d: conv2d(x, W * M), M as the weight [out, in/g, kh, kw]."""

    def __init__(self, i, o, k, **kw):
        super().__init__(i, o, k, **kw)
        self.register_buffer("mask", torch.ones_like(self.weight))

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class MConvTranspose2d(nn.ConvTranspose2d):
    """Upstream mConvTranspose2d: conv_transpose2d(x, W * M), W [in, out/g, kh, kw]."""

    def __init__(self, i, o, k, **kw):
        super().__init__(i, o, k, **kw)
        self.register_buffer("mask", torch.ones_like(self.weight))

    def forward(self, x):
        return nn.functional.conv_transpose2d(
            x, self.weight * self.mask, self.bias, self.stride, self.padding,
            self.output_padding, self.groups, self.dilation)


def masked_cnn():
    return nn.Sequential(
        MConv2d(1, 4, 3, padding=1),          # 0
        nn.BatchNorm2d(4),                    # 1
        nn.ReLU(),                            # 2
        nn.MaxPool2d(2),                      # 3
        MConvTranspose2d(4, 4, 2, stride=2),  # 4
        nn.ReLU(),                            # 5
        MConv2d(4, 6, 3),                     # 6
        nn.ReLU(),                            # 7
        nn.MaxPool2d(2),                      # 8
        nn.Flatten(),                         # 9
        MLinear(54, 10),                      # 10
        nn.ReLU(),                            # 11
        nn.Linear(10, 3),                     # 12
    )


class BioRNN(nn.Module):
    """Upstream's ModelBio: nn.RNN (relu, batch first) + fc over every time step."""

    def __init__(self, i=3, h=16, o=2):
        super().__init__()
        self.rnn = nn.RNN(i, h, 1, batch_first=True, nonlinearity="relu")
        # The topology beside weight_hh_l0 (upstream keeps it as the zeros of the weight).
        self.rnn.register_buffer("mask", torch.ones(h, h))
        self.fc = nn.Linear(h, o)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out.reshape(-1, out.shape[-1]))


MODELS = {"masked_cnn": masked_cnn, "bio_rnn": BioRNN}


def check(folder):
    worst = 0.0
    for name, make in MODELS.items():
        model = make()
        model.load_state_dict(load_file(f"{folder}/{name}.safetensors"), strict=True)
        model.eval()
        io = load_file(f"{folder}/{name}_io.safetensors")
        with torch.no_grad():
            y = model(io["x"])
        diff = (y - io["y"]).abs().max().item()
        worst = max(worst, diff)
        print(f"{name}: ours -> PyTorch max |diff| = {diff:.3g} over {y.numel()} outputs")
    if worst > TOLERANCE:
        print(f"FAILED: {worst:.3g} > {TOLERANCE}")
        sys.exit(1)


def fixture(folder):
    torch.manual_seed(0)
    for name, make in MODELS.items():
        ours = load_file(f"{folder}/{name}.safetensors")
        model = make()
        state = model.state_dict()
        with torch.no_grad():
            for key, value in ours.items():
                if key.endswith("mask"):
                    state[key].copy_(value)
            # Upstream applies the mask once after PyTorch's initialisers.
            for key in list(state):
                if key.endswith("mask"):
                    weight = key[: -len("mask")] + ("weight_hh_l0" if key.startswith("rnn.") else "weight")
                    state[weight].mul_(state[key])
                if key.endswith("running_mean"):
                    state[key].uniform_(-0.5, 0.5)
                if key.endswith("running_var"):
                    state[key].uniform_(0.5, 2.0)
        model.load_state_dict(state)
        model.eval()
        shape = (4, 5, 3) if name == "bio_rnn" else (4, 1, 8, 8)
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            y = model(x)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{folder}/{name}.safetensors",
                  metadata={"format": "pt"})
        save_file({"x": x, "y": y.contiguous()}, f"{folder}/{name}_io.safetensors")
        print(f"{name}: PyTorch-initialised fixture written ({y.numel()} outputs)")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "fixture"):
        sys.exit(__doc__)
    {"check": check, "fixture": fixture}[sys.argv[1]](sys.argv[2])
