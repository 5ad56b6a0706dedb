"""Run a training stage with Lightning: checkpoints, logs, resuming, and exporting weights.

A stage's folder (``runs/<name>`` by default; outside git) holds ``config.yaml`` (the stage
as run), ``checkpoints/last.ckpt`` (written at the end of every epoch: a few minutes each), ``csv/`` and ``tb/`` logs (losses and AF terms; validation audio in
TensorBoard) and, at the end, ``weights.safetensors``. Running the same stage again into
the same folder resumes from ``last.ckpt``: the optimiser, scheduler, step and epoch are
restored, and since every item is a function of its index (:mod:`diffmst.data.samplers`),
the data order is the one an uninterrupted run would have seen."""

from __future__ import annotations

import datetime
import os
import pickle
from pathlib import Path

import torch

from ..errors import DiffmstError
from ..model.network import DiffMST
from ..model.weights import load_weights, save_weights
from .config import TrainConfig

CHECKPOINTS = "checkpoints"
LAST = "last.ckpt"
WEIGHTS = "weights.safetensors"


def default_run_dir(cfg: TrainConfig) -> Path:
    return Path("runs") / cfg.name


def init_weights(model: DiffMST, path: str | os.PathLike) -> None:
    """Start ``model`` from an earlier stage: its ``weights.safetensors``, a run folder, or
    a Lightning checkpoint of :class:`~diffmst.train.module.MixModule` (trusted: our own)."""
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS if (p / WEIGHTS).is_file() else p / CHECKPOINTS / LAST
    if p.suffix == ".safetensors":
        src, _ = load_weights(p, model.config)
        model.load_state_dict(src.state_dict())
        return
    if not p.is_file():
        raise DiffmstError(f"{path}: no weights or checkpoint to start from")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)["state_dict"]
        state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        # a layer this model has and the earlier stage's did not starts fresh (the master's
        # context input starts at zero, so the network starts as the earlier one was)
        if unexpected or any(not k.startswith("context.") for k in missing):
            raise RuntimeError(f"missing {missing}, unexpected {unexpected}")
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as e:
        raise DiffmstError(f"{path}: not a checkpoint of this model ({str(e).splitlines()[0][:200]})") from None


def fit(cfg: TrainConfig, run_dir: str | os.PathLike | None = None, accelerator: str = "auto",
        devices: int | str = "auto", strategy: str = "auto", max_minutes: float | None = None,
        progress: bool = True) -> Path:
    """Train (or resume) one stage; returns the path of the exported weights.

    ``max_minutes`` stops the run cleanly after that much wall time (a checkpoint is
    written; run again to go on)."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from .data import datasets
    from .module import EpochOrder, MixModule

    run = Path(run_dir) if run_dir else default_run_dir(cfg)
    _check_same_stage(run, cfg, write=False)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    train_set, val_set = datasets(cfg)
    module = MixModule(cfg.to_dict())
    last = run / CHECKPOINTS / LAST
    if cfg.init_from and not last.is_file():
        init_weights(module.model, cfg.init_from)
    run.mkdir(parents=True, exist_ok=True)
    _check_same_stage(run, cfg, write=True)  # only a stage that could start claims its folder
    loaders = [_loader(train_set, cfg, shuffle_epochs=True), _loader(val_set, cfg, shuffle_epochs=False)]
    # one checkpoint, at the end of every epoch (a few minutes: see items_per_epoch), so
    # the one resumed from always sits on an epoch boundary and the data order is exact
    # (save_last needs a top-k save to trigger it: one file named "last", replaced each epoch)
    ckpt = ModelCheckpoint(dirpath=run / CHECKPOINTS, filename=LAST.removesuffix(".ckpt"), save_top_k=1,
                           every_n_epochs=1, enable_version_counter=False)
    trainer = pl.Trainer(
        accelerator=accelerator, devices=devices, strategy=strategy, max_steps=cfg.max_steps,
        max_time=datetime.timedelta(minutes=max_minutes) if max_minutes else None,
        gradient_clip_val=cfg.grad_clip, callbacks=[ckpt, EpochOrder(loaders[0])], log_every_n_steps=10,
        # a new version folder per launch (Lightning's CSV logger would replace the file): see read_metrics
        logger=[CSVLogger(run, name="csv"), TensorBoardLogger(run, name="tb")],
        enable_progress_bar=progress, enable_model_summary=progress, default_root_dir=run,
        use_distributed_sampler=False, num_sanity_val_steps=0)
    trainer.fit(module, *loaders, ckpt_path=str(last) if last.is_file() else None)
    out = run / WEIGHTS
    if trainer.is_global_zero:
        steps = int(trainer.global_step)
        per_epoch = max(1, len(loaders[0]))
        save_weights(module.model, out, {"stage": cfg.name, "steps": steps, "epochs": -(-steps // per_epoch)})
    return out


def export(cfg: TrainConfig, run_dir: str | os.PathLike | None = None) -> Path:
    """Write ``weights.safetensors`` of a run folder from its last checkpoint (a stage
    stopped early, or still running), without training; returns its path."""
    run = Path(run_dir) if run_dir else default_run_dir(cfg)
    last = run / CHECKPOINTS / LAST
    if not last.is_file():
        raise DiffmstError(f"{last}: no checkpoint to export (train first)")
    _check_same_stage(run, cfg, write=False)
    model = DiffMST(cfg.model_config)
    init_weights(model, last)
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    return save_weights(model, run / WEIGHTS, {"stage": cfg.name, "steps": int(ckpt["global_step"]),
                                               "epochs": int(ckpt["epoch"]) + 1})


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, str]]:
    """Every row the CSV logger wrote in a run folder, over all its launches, in order."""
    import csv

    rows: list[dict[str, str]] = []
    versions = sorted(Path(run_dir, "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
    for path in versions:
        with open(path, newline="") as f:
            rows += list(csv.DictReader(f))
    return rows


def _loader(dataset, cfg: TrainConfig, shuffle_epochs: bool):
    """Items in :class:`~diffmst.data.samplers.EpochSampler` order (new items each epoch,
    the same ones when an epoch is rerun; split over DDP ranks), or fixed for validation."""
    from ..data.samplers import make_loader

    rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", 1))
    loader = make_loader(dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                         rank=rank, world_size=world)
    if not shuffle_epochs:
        loader.sampler.set_epoch = lambda epoch: None  # validation: the same items every epoch
    return loader


def _check_same_stage(run: Path, cfg: TrainConfig, write: bool) -> None:
    """A run folder belongs to one stage config: resuming with another is refused; with
    ``write`` a new folder is claimed for this one."""
    import yaml

    from ..fileio import atomic_path

    saved = run / "config.yaml"
    if saved.is_file():
        old = yaml.safe_load(saved.read_text())
        if old != cfg.to_dict():
            diff = {k: (old.get(k), v) for k, v in cfg.to_dict().items() if old.get(k) != v}
            raise DiffmstError(f"{run} was made by another config (saved vs now: {diff}); "
                               "use another --run folder")
        return
    if not write:
        return
    with atomic_path(saved) as tmp:
        Path(tmp).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
