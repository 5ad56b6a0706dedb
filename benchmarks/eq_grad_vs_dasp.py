"""EQ gradients, ours vs dasp-pytorch console: same tracks, random EQ settings, neutral
compressors, a Bark-spectrum loss; prints the cosine of the two gradients over the EQ
parameters and the first few side by side.

    python benchmarks/eq_grad_vs_dasp.py
"""
import sys, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from console_speed import dasp_console
from diffmst.console import console, TRACK_PARAMS, MASTER_PARAMS
from diffmst.console.params import defaults, normalize, denormalize, TRACK_INDEX
from diffmst.features import bark_spectrum, rms_db
torch.manual_seed(0)
sr = 24000
x = torch.randn(1, 4, 1, sr * 2) * 0.1
tp0 = defaults(TRACK_PARAMS, 1, 4); mp0 = defaults(MASTER_PARAMS, 1)
g = torch.Generator().manual_seed(1)
u = normalize(tp0.double(), TRACK_PARAMS).float()
# random EQ, neutral compressor
for k, p in enumerate(TRACK_PARAMS):
    if p.name.startswith("eq.") and "band3" not in p.name:
        u[..., k] = torch.rand(1, 4, generator=g) * 0.6 + 0.2
u = u.requires_grad_()
target = torch.randn(1, 2, 24) 
def lossf(fn):
    tp = denormalize(u, TRACK_PARAMS)
    fp = tp.clone()
    mix = fn(x, tp, mp0, sr)
    mix = mix[0] if isinstance(mix, tuple) else mix
    bs = bark_spectrum(mix, sr)
    return ((bs - bs.detach().mean()) ** 2).mean() + bs[..., :12].mean(), mix
for name, fn in [("ours", console), ("dasp", dasp_console)]:
    u.grad = None
    l, mix = lossf(fn); l.backward()
    print(name, float(l.detach()), float(mix.detach().pow(2).mean()))
    globals()["g_" + name] = u.grad.clone()
eq = [k for k, p in enumerate(TRACK_PARAMS) if p.name.startswith("eq.") and "band3" not in p.name]
a, b = g_ours[..., eq].flatten(), g_dasp[..., eq].flatten()
print("cos EQ grads", float(a @ b / a.norm() / b.norm()), "norm ratio", float(a.norm() / b.norm()))
for k in eq[:15]:
    print(TRACK_PARAMS[k].name, g_ours[0, 0, k].item(), g_dasp[0, 0, k].item())
