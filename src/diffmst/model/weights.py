"""Weights on disk: safetensors only (never pickle), with the model's config and a format
version in the file's metadata, so a file loads into the network it was made for or is
refused with a clear error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import DiffmstError
from ..fileio import atomic_path
from .config import ModelConfig
from .network import DiffMST

FORMAT = "diffmst-weights"
VERSION = 1
#: the shipped compact model (docs/model.md), loaded when no weights are named
SHIPPED = Path(__file__).resolve().parent.parent / "assets" / "compact.safetensors"


def save_weights(model: DiffMST, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write ``model``'s weights to ``path`` (safetensors; atomically) with its config and
    ``meta`` (e.g. training steps; JSON-able) in the file's metadata."""
    from safetensors.torch import save

    path = Path(path)
    header = {"format": FORMAT, "version": str(VERSION), "config": json.dumps(model.config.to_dict()),
              "meta": json.dumps(meta or {})}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        # bytes written into the temp file we made (safetensors' save_file makes its own
        # file, mode 0600 whatever the umask)
        tmp.write_bytes(save(tensors, metadata=header))
    return path


def load_weights(path: str | os.PathLike, config: ModelConfig | None = None,
                 device: str | torch.device = "cpu") -> tuple[DiffMST, dict]:
    """``(model in eval mode, meta)`` from a file :func:`save_weights` wrote. With
    ``config``, the file's config must equal it. Raises :class:`DiffmstError` for a
    missing file, a file that is not safetensors (a pickle checkpoint, say), another
    format or version, or weights that do not fit the config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise DiffmstError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise DiffmstError(f"{path}: not a safetensors weights file ({e}); diffmst never loads pickled "
                           "checkpoints") from None
    if header.get("format") != FORMAT:
        raise DiffmstError(f"{path}: not diffmst weights (format {header.get('format')!r})")
    if header.get("version") != str(VERSION):
        raise DiffmstError(f"{path}: weights format version {header.get('version')} is not supported "
                           f"(this diffmst reads version {VERSION})")
    try:
        file_config = ModelConfig.from_dict(json.loads(header["config"]))
    except (KeyError, ValueError, TypeError) as e:
        raise DiffmstError(f"{path}: its model config is unreadable ({e})") from None
    if config is not None and config != file_config:
        diff = {k: (v, file_config.to_dict()[k]) for k, v in config.to_dict().items() if file_config.to_dict()[k] != v}
        raise DiffmstError(f"{path}: made for another model config (asked vs file: {diff})")
    model = DiffMST(file_config)
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as e:
        raise DiffmstError(f"{path}: the weights do not fit the model ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), json.loads(header.get("meta", "{}"))


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> tuple[DiffMST, dict]:
    """The shipped model (``path`` None) or the weights at ``path``: ``(model, meta)``."""
    if path is None and not SHIPPED.is_file():
        raise DiffmstError(f"{SHIPPED}: the shipped weights are missing from this install; "
                           "pass weights of your own (diffmst train)")
    return load_weights(SHIPPED if path is None else path, device=device)
