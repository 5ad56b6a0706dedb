"""The training step: network -> settings -> console -> loudness-normalised mix -> losses.

One :class:`MixModule` serves every stage; the stage's :class:`~diffmst.train.config.
TrainConfig` says which losses count. Logged per step and per validation epoch: the total
loss, each loss, and the paper's AF measure with its five terms (``af_rms`` ...); validation
also logs the equal-loudness mix's numbers on the same items, so curves read as a ratio."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch

from ..console.console import console
from ..console.params import MASTER_PARAMS, TRACK_PARAMS, denormalize, normalize
from ..data.samplers import REFERENCE_LUFS
from ..evaluate.metrics import paper_distance, paper_features
from ..losses import MRSTFTLoss
from ..loudness import loudness_normalize
from ..model.network import DiffMST
from .config import TrainConfig


def mix_with(tracks: torch.Tensor, track_u: torch.Tensor, master_u: torch.Tensor,
             sample_rate: int) -> torch.Tensor:
    """The console's mix of ``tracks (batch, tracks, 1, samples)`` with normalised settings,
    brought to -16 LUFS (differentiable). Shape: ``(batch, 2, samples)``."""
    mix, _ = console(tracks, denormalize(track_u, TRACK_PARAMS), denormalize(master_u, MASTER_PARAMS),
                     sample_rate, wet=False)
    return loudness_normalize(mix, sample_rate, REFERENCE_LUFS)[0]


def equal_loudness_u(track_names: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised settings of the equal-loudness mix of a batch whose tracks arrive at
    equal loudness: :meth:`~diffmst.console.Settings.default` (unity gains, flat EQ,
    compressors and master bypassed, mono tracks centred, a stereo file's ``.L``/``.R``
    hard left and right). ``track_names``: per item, ``""`` for padding."""
    from ..console import Settings

    rows = [Settings.default([n or f"(pad {j})" for j, n in enumerate(names)]) for names in track_names]
    return (normalize(torch.stack([s.track_params for s in rows]), TRACK_PARAMS),
            normalize(torch.stack([s.master_params for s in rows]), MASTER_PARAMS))


#: settings a mix cannot reveal (an EQ band's frequency and Q at 0 dB gain, the time
#: constants of a compressor that barely acts) weigh a quarter in the settings loss
_HIDDEN = (".freq_hz", ".q", "attack_ms", "release_ms", "knee_db")


def _param_weights(specs) -> torch.Tensor:
    w = torch.tensor([0.25 if p.name.endswith(_HIDDEN) else 1.0 for p in specs])
    return w / w.mean()


TRACK_W, MASTER_W = _param_weights(TRACK_PARAMS), _param_weights(MASTER_PARAMS)


def params_l1(track_u, master_u, true_tp, true_mp, mask) -> torch.Tensor:
    """Weighted mean absolute error of normalised settings over the real tracks and the
    master (hidden settings weigh a quarter: see ``_HIDDEN``)."""
    t = ((track_u - normalize(true_tp, TRACK_PARAMS)).abs() * TRACK_W.to(track_u)).mean(-1)   # (batch, tracks)
    t = (t * mask).sum() / mask.sum().clamp_min(1)
    return 0.5 * t + 0.5 * ((master_u - normalize(true_mp, MASTER_PARAMS)).abs() * MASTER_W.to(master_u)).mean()


class MixModule(pl.LightningModule):
    """The network and its losses for one stage (see the module docstring)."""

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg = TrainConfig.from_dict(config)
        self.model = DiffMST(self.cfg.model_config)
        self.mrstft = MRSTFTLoss()
        self.weights = {k: float(v) for k, v in self.cfg.loss.items() if float(v) > 0}

    def losses(self, batch: dict, track_u: torch.Tensor, master_u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every loss this batch allows (``params``/``mrstft`` need Method 1's truth), and
        the paper's AF terms; the console runs only if an audio loss is weighted or the
        module is validating."""
        out: dict[str, torch.Tensor] = {}
        sr = self.cfg.sample_rate
        mask = batch["mask"].to(track_u.dtype)
        if "track_params" in batch:
            out["params"] = params_l1(track_u, master_u, batch["track_params"], batch["master_params"], mask)
        if self.training and not ({"mrstft", "af"} & set(self.weights)):
            return out
        mix = mix_with(batch["tracks"], track_u, master_u, sr)
        target = batch.get("target", batch["reference"])
        if "target" in batch:
            out["mrstft"] = self.mrstft(mix, target)
        with torch.no_grad():
            ft = paper_features(target.double(), sr)
        af, terms = paper_distance(paper_features(mix.double(), sr), ft)
        out["af"] = af.float()
        out.update({f"af_{k}": v.float().detach() for k, v in terms.items()})
        return out

    def _total(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(w * out[k] for k, w in self.weights.items())

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        track_u, master_u = self.model(batch["tracks"][:, :, 0], batch["reference"], batch["mask"])
        out = self.losses(batch, track_u, master_u)
        loss = self._total(out)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(track_u))
        self.log_dict({f"train/{k}": v for k, v in out.items()}, batch_size=len(track_u))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        b = batch["mask"].shape[0]
        track_u, master_u = self.model(batch["tracks"][:, :, 0], batch["reference"], batch["mask"])
        out = self.losses(batch, track_u, master_u)
        self.log("val/loss", self._total(out), batch_size=b)
        self.log_dict({f"val/{k}": v for k, v in out.items()}, batch_size=b)
        eq = self.losses(batch, *equal_loudness_u(batch["track_names"]))
        self.log_dict({f"val_equal/{k}": v for k, v in eq.items() if k in ("mrstft", "af")}, batch_size=b)
        if batch_idx == 0:
            self._audio_example(batch, track_u, master_u)

    def _audio_example(self, batch: dict, track_u: torch.Tensor, master_u: torch.Tensor) -> None:
        """The first validation item's predicted mix, true mix and reference to TensorBoard."""
        tb = next((lg.experiment for lg in self.loggers if hasattr(lg.experiment, "add_audio")), None)
        if tb is None:
            return
        sr = self.cfg.sample_rate
        with torch.no_grad():
            mix = mix_with(batch["tracks"][:1], track_u[:1], master_u[:1], sr)[0]
        for name, x in (("predicted", mix), ("true", batch["target"][0]), ("reference", batch["reference"][0])):
            x = x.mean(0).clamp(-1, 1)                       # TensorBoard's audio is mono
            tb.add_audio(f"val/{name}", x, self.global_step, sample_rate=sr)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        warm, total = self.cfg.warmup_steps, self.cfg.max_steps

        def schedule(step: int) -> float:  # linear warm-up, then cosine to a tenth
            if step < warm:
                return (step + 1) / warm
            t = min(1.0, (step - warm) / max(1, total - warm))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}



class EpochOrder(pl.Callback):
    """Training epoch ``e`` reads the items of epoch ``e`` of ``loader``'s
    :class:`~diffmst.data.samplers.EpochSampler`. (Lightning sets the sampler's epoch from
    its own progress counter, which after a restore from an end-of-epoch checkpoint is one
    ahead: a resumed run skipped an epoch of items.)"""

    def __init__(self, loader):
        self.loader = loader

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.loader.sampler.set_epoch(trainer.current_epoch)
