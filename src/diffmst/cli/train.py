"""`diffmst train` and `diffmst export`: the network's training stages (needs the ``train``
extra: Lightning and TensorBoard)."""

from __future__ import annotations

from ..errors import DiffmstError
from .common import _float_above, _quiet_arg


def _lightning() -> None:
    try:
        import lightning  # noqa: F401
    except ImportError:
        raise DiffmstError("training needs Lightning: pip install 'diffmst[train]'") from None


def _cmd_train(args) -> None:
    import dataclasses

    from ..train.config import load_config
    from ..train.run import export, fit

    _lightning()
    cfg = load_config(args.config)
    if args.corpus:
        cfg = dataclasses.replace(cfg, corpus=args.corpus)
    if args.init_from:
        cfg = dataclasses.replace(cfg, init_from=args.init_from)
    if args.export:
        print(export(cfg, args.run))
        return
    print(fit(cfg, args.run, accelerator=args.accelerator, devices=args.devices, strategy=args.strategy,
              max_minutes=args.max_minutes, progress=not args.quiet))


def _devices(text: str):
    return text if text == "auto" else int(text) if text.isdigit() else text


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train the network (one stage; resumes)",
        description="Train one stage of the Diff-MST network. CONFIG is a shipped stage (compact-method1, "
                    "compact-method2, ...) or a YAML file. Checkpoints, logs and the final weights go to "
                    "--run (default runs/<stage name>); running the same command again resumes from the "
                    "last checkpoint.")
    p.add_argument("--config", "-c", required=True, help="stage name or YAML file")
    p.add_argument("--run", help="run folder (default: runs/<stage name>)")
    p.add_argument("--corpus", help="generated corpus folder (default: the config's)")
    p.add_argument("--init-from", help="weights, checkpoint or run folder of an earlier stage to start from")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu (default: auto)")
    p.add_argument("--devices", default="auto", type=_devices, help="number of devices (default: auto)")
    p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default: auto)")
    p.add_argument("--export", action="store_true",
                   help="only write the run's weights.safetensors from its last checkpoint (a stage stopped early)")
    p.add_argument("--max-minutes", type=_float_above(0, 1e6, "min"), help="stop cleanly after this long (resume later)")
    _quiet_arg(p)
    p.set_defaults(func=_cmd_train)
