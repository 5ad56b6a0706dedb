"""Where a training step's time goes: data, encoder, controller, console, losses, backward.

    python benchmarks/train_step.py --corpus data/corpus22 [--config compact-method1] [--steps 3]

Times one batch of the stage's data (made in this process: what a data-loader worker
spends per batch) and then each part of the step, forward and backward, averaged over
``--steps`` repeats, on the threads torch has. Prints seconds and each part's share.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="compact-method1")
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()

    import dataclasses

    import torch

    from diffmst.data.samplers import collate
    from diffmst.evaluate.metrics import paper_distance, paper_features
    from diffmst.train.config import load_config
    from diffmst.train.data import datasets
    from diffmst.train.module import MixModule, mix_with, params_l1

    cfg = load_config(args.config)
    if args.corpus:
        cfg = dataclasses.replace(cfg, corpus=args.corpus)
    if not os.path.isdir(cfg.corpus):
        print(f"train_step: skipped, no corpus at {cfg.corpus} (diffmst data generate --sample-rate 22050 "
              f"-o {cfg.corpus})")
        return
    train, _ = datasets(cfg)
    t0 = time.perf_counter()
    batch = collate([train[i] for i in range(cfg.batch_size)])
    t_data = time.perf_counter() - t0
    module = MixModule(cfg.to_dict()).train()
    model, sr = module.model, cfg.sample_rate
    parts: dict[str, float] = {}

    def tick(name: str, t: float) -> float:
        now = time.perf_counter()
        parts[name] = parts.get(name, 0.0) + (now - t) / args.steps
        return now

    for _ in range(args.steps):
        t = time.perf_counter()
        tr = model.embed(batch["tracks"][:, :, 0])
        rf = model.embed(batch["reference"])
        ctx = (model.track_context(batch["tracks"][:, :, 0], batch["mask"]), model.reference_context(batch["reference"])) \
            if model.context is not None else (None, None)
        t = tick("encoder fwd", t)
        tu, mu = model.control(tr, rf, batch["mask"], *ctx)
        t = tick("controller fwd", t)
        lp = params_l1(tu, mu, batch["track_params"], batch["master_params"], batch["mask"].float()) \
            if "track_params" in batch else tu.sum() * 0
        t = tick("params loss", t)
        mix = mix_with(batch["tracks"], tu, mu, sr)
        t = tick("console fwd", t)
        target = batch.get("target", batch["reference"])
        lm = module.mrstft(mix, target)
        t = tick("mrstft fwd", t)
        la, _ = paper_distance(paper_features(mix.double(), sr), paper_features(target.double(), sr))
        t = tick("af fwd", t)
        mix_grad = torch.autograd.grad(lm + la.float(), [tu, mu], retain_graph=False)
        t = tick("audio losses + console bwd", t)
        (lp + (tu * mix_grad[0]).sum() + (mu * mix_grad[1]).sum()).backward()
        t = tick("network bwd", t)
        model.zero_grad()
    total = sum(parts.values())
    print(f"{cfg.name}: batch {cfg.batch_size} x {cfg.max_tracks} tracks x {cfg.seconds:g} s at {sr} Hz, "
          f"{torch.get_num_threads()} threads")
    print(f"  {'data (one batch, one process)':32s} {t_data:7.3f} s")
    for k, v in parts.items():
        print(f"  {k:32s} {v:7.3f} s  {100 * v / total:5.1f}%")
    print(f"  {'step total':32s} {total:7.3f} s")


if __name__ == "__main__":
    main()
