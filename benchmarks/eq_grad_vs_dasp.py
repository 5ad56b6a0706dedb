"""EQ gradients, ours vs dasp-pytorch console: same tracks, random EQ settings, neutral
compressors, a Bark-spectrum loss; prints the cosine of the two gradients over the EQ
parameters and the first few side by side.

    python benchmarks/eq_grad_vs_dasp.py
"""

from __future__ import annotations

import torch

from console_speed import dasp_console

from diffmst.console import MASTER_PARAMS, TRACK_PARAMS, console
from diffmst.console.params import defaults, denormalize, normalize
from diffmst.features import bark_spectrum

SR = 24000


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 4, 1, SR * 2) * 0.1
    tp0, mp0 = defaults(TRACK_PARAMS, 1, 4), defaults(MASTER_PARAMS, 1)
    g = torch.Generator().manual_seed(1)
    u0 = normalize(tp0.double(), TRACK_PARAMS).float()
    eq = [k for k, p in enumerate(TRACK_PARAMS) if p.name.startswith("eq.") and "band3" not in p.name]
    for k in eq:  # random EQ, neutral compressor
        u0[..., k] = torch.rand(1, 4, generator=g) * 0.6 + 0.2
    grads = {}
    for name, fn in [("ours", console), ("dasp", dasp_console)]:
        u = u0.clone().requires_grad_(True)
        mix = fn(x, denormalize(u, TRACK_PARAMS), mp0, SR)
        mix = mix[0] if isinstance(mix, tuple) else mix
        bs = bark_spectrum(mix, SR)
        loss = ((bs - bs.detach().mean()) ** 2).mean() + bs[..., :12].mean()
        loss.backward()
        print(name, float(loss.detach()), float(mix.detach().pow(2).mean()))
        grads[name] = u.grad
    a, b = grads["ours"][..., eq].flatten(), grads["dasp"][..., eq].flatten()
    print("cos EQ grads", float(a @ b / a.norm() / b.norm()), "norm ratio", float(a.norm() / b.norm()))
    for k in eq[:15]:
        print(TRACK_PARAMS[k].name, grads["ours"][0, 0, k].item(), grads["dasp"][0, 0, k].item())


if __name__ == "__main__":
    main()
