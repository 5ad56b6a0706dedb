"""Training stages: the stage config, the corpus split, real references, and a tiny stage
trained end to end on a generated corpus (exported weights, logs, resuming, refusals)."""

from __future__ import annotations

# first, before torch loads: diffmst sets OpenMP threads to wait passively (diffmst/threads.py),
# without which these runs take ~10x longer beside another busy process
import diffmst  # noqa: F401  isort: skip

import contextlib
import dataclasses
import functools
import io
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

pytest.importorskip("lightning")

import diffmst.train.config as train_config
from diffmst.cli import main
from diffmst.data.samplers import Method1Dataset
from diffmst.data.sources import GeneratedSource
from diffmst.errors import DiffmstError
from diffmst.model import DiffMST, ModelConfig
from diffmst.model.weights import load_weights, save_weights
from diffmst.train.config import TrainConfig, load_config
from diffmst.train.data import Choice, RealReferences, datasets, split_songs
from diffmst.train.module import MixModule
from diffmst.train.run import fit, init_weights

SR = 22050
SHIPPED_DIR = Path(train_config.__file__).parent / "configs"
SMALL = ModelConfig(sample_rate=SR, channels=(8, 16), dim=32, layers=1, heads=2, ff=64)

# the tiny stage: 3 training songs, 1 held back; 2 steps an epoch, 3 epochs
STEPS_PER_EPOCH, EPOCHS = 2, 3


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def generate(out: Path, songs: int, first: int = 0) -> Path:
    code = main(["data", "generate", "-n", str(songs), "--first", str(first), "-o", str(out), "--seconds", "3", "3",
                 "--stems", "2", "3", "--sources", "procedural", "--renderer", "numpy", "--sample-rate", str(SR),
                 "-j", "1", "-q"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """Four short generated songs at 22.05 kHz (the compact model's rate)."""
    return generate(tmp_path_factory.mktemp("train") / "corpus", 4)


def tiny(corpus: Path, **changes) -> dict:
    return {"name": "tiny", "method": "method1", "model": "compact", "corpus": str(corpus), "val_songs": 1,
            "val_items": 2, "min_tracks": 1, "max_tracks": 4, "seconds": 1.0, "loss": {"params": 1.0, "mrstft": 0.2},
            "lr": 3e-4, "warmup_steps": 2, "batch_size": 2, "max_steps": STEPS_PER_EPOCH * EPOCHS,
            "items_per_epoch": 2 * STEPS_PER_EPOCH, "num_workers": 0, "seed": 0, **changes}


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def metrics(run_dir: Path) -> list[dict[str, str]]:
    from diffmst.train.run import read_metrics

    return read_metrics(run_dir)


def val_epochs(run_dir: Path) -> list[int]:
    return sorted(int(r["epoch"]) for r in metrics(run_dir) if r.get("val/af"))


class Watch:
    """Counts training steps and records the training items fetched (by index)."""

    def __init__(self, mp: pytest.MonkeyPatch, train_seed: int = 0, crash_at: int | None = None):
        self.steps, self.items, self.start = 0, [], None
        get, step = Method1Dataset.__getitem__, MixModule.training_step

        @functools.wraps(get)
        def getitem(ds, index):
            if ds.seed == train_seed:  # validation items have a seed of their own
                if crash_at is not None and index >= crash_at:
                    raise RuntimeError("simulated crash")
                self.items.append(int(index))
            return get(ds, index)

        @functools.wraps(step)
        def training_step(module, batch, batch_idx):
            if self.start is None:
                self.start = state(module.model)
            self.steps += 1
            return step(module, batch, batch_idx)

        mp.setattr(Method1Dataset, "__getitem__", getitem)
        mp.setattr(MixModule, "training_step", training_step)


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    """The tiny stage trained three ways:

    - ``straight``: uninterrupted, with ``diffmst train`` (its YAML names a missing corpus,
      which ``--corpus`` replaces);
    - ``resumed``: crashed in its second epoch (after the first epoch's checkpoint), then
      run again to the end with :func:`fit`;
    - ``again``: a copy of the finished ``straight`` run, run once more.
    """
    root = tmp_path_factory.mktemp("runs")
    yaml_path = root / "tiny.yaml"
    yaml_path.write_text(yaml.safe_dump(tiny(root / "no-such-corpus")))
    cfg = TrainConfig.from_dict(tiny(corpus))
    out: dict = {"cfg": cfg, "root": root}

    with pytest.MonkeyPatch.context() as mp:
        w = Watch(mp)
        straight = root / "straight"
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            code = main(["train", "--config", str(yaml_path), "--run", str(straight), "--corpus", str(corpus), "-q"])
        out["straight"] = {"dir": straight, "code": code, "printed": printed.getvalue(), "steps": w.steps,
                           "items": w.items, "start": w.start}

    resumed = root / "resumed"
    with pytest.MonkeyPatch.context() as mp:
        w = Watch(mp, crash_at=cfg.items_per_epoch)  # the first item of the second epoch
        with pytest.raises(RuntimeError, match="simulated crash"):
            fit(cfg, resumed, progress=False)
        ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        first = {"steps": w.steps, "items": w.items, "ckpt_step": ckpt["global_step"],
                 "val_epochs": val_epochs(resumed)}
    with pytest.MonkeyPatch.context() as mp:
        w = Watch(mp)
        path = fit(cfg, resumed, progress=False)
        out["resumed"] = {"dir": resumed, "path": path, "first": first, "steps": w.steps, "items": w.items}

    again = root / "again"
    shutil.copytree(straight, again)
    with pytest.MonkeyPatch.context() as mp:
        w = Watch(mp)
        path = fit(cfg, again, progress=False)
        out["again"] = {"dir": again, "path": path, "steps": w.steps}
    return out


# ----------------------------------------------------------------------------- config


def test_an_unknown_config_key_is_refused_by_name():
    with pytest.raises(DiffmstError, match=r"unknown training config key\(s\): lrate"):
        TrainConfig.from_dict({"name": "x", "lrate": 1e-3})


def test_a_config_without_a_name_is_refused():
    with pytest.raises(DiffmstError, match="needs a name"):
        TrainConfig.from_dict({"method": "method1"})


@pytest.mark.parametrize("loss", [{"params": 1.0}, {"mrstft": 1.0}, {"af": 1.0, "params": 0.5}])
def test_method2_refuses_losses_that_need_the_true_mix_or_settings(loss):
    with pytest.raises(DiffmstError, match="Method 2"):
        TrainConfig.from_dict({"name": "x", "method": "method2", "loss": loss})
    assert TrainConfig.from_dict({"name": "x", "method": "method1", "loss": loss}).loss == loss


@pytest.mark.parametrize("changes, words", [
    ({"method": "method3"}, ["method must be one of", "method3"]),
    ({"model": "huge"}, ["model must be one of", "compact", "paper", "huge"]),
    ({"loss": {"af": 1.0, "l2": 1.0}}, ["loss must map"]),
    ({"loss": {}}, ["loss must map"]),
    ({"loss": {"af": -1.0}}, ["loss must map"]),
    ({"min_tracks": 5, "max_tracks": 4}, ["min_tracks <= max_tracks"]),
    ({"min_tracks": 0}, ["min_tracks <= max_tracks"]),
    ({"real_reference_prob": 1.5, "references": ["/x"]}, ["real_reference_prob must be in [0, 1]"]),
    ({"real_reference_prob": 0.5}, ["needs reference folders"]),
    ({"batch_size": 0}, ["batch_size must be at least 1"]),
    ({"max_steps": 0}, ["max_steps must be at least 1"]),
    ({"items_per_epoch": 0}, ["items_per_epoch must be at least 1"]),
    ({"val_items": 0}, ["val_items must be at least 1"]),
])
def test_nonsense_config_values_are_refused_with_the_reason(changes, words):
    with pytest.raises(DiffmstError) as e:
        TrainConfig.from_dict({"name": "x", **changes})
    for w in words:
        assert w in str(e.value), (w, str(e.value))


@pytest.mark.parametrize("name", ["compact-method1", "compact-method2"])
def test_the_shipped_stages_load_by_name_as_written(name):
    written = yaml.safe_load((SHIPPED_DIR / f"{name}.yaml").read_text())
    cfg = load_config(name)
    assert cfg.name == name and cfg.model == "compact" and cfg.sample_rate == 22050
    got = cfg.to_dict()
    for key, value in written.items():
        assert got[key] == value, key
    assert TrainConfig.from_dict(got) == cfg  # to_dict round-trips


def test_the_second_shipped_stage_starts_from_the_first_and_keeps_the_benchmark_songs_out():
    one, two = load_config("compact-method1"), load_config("compact-method2")
    assert one.method == "method1" and two.method == "method2" and set(two.loss) == {"af"}
    assert Path(two.init_from).name == one.name
    assert 0 < two.real_reference_prob <= 1 and two.references
    assert "planetblupi/music/music004" in two.exclude_references


def test_a_config_given_by_path_loads_and_bad_files_are_refused(tmp_path):
    good = tmp_path / "stage.yaml"
    good.write_text("name: mine\nmax_steps: 7\nloss: {af: 1.0}\n")
    cfg = load_config(str(good))
    assert (cfg.name, cfg.max_steps, cfg.loss, cfg.method) == ("mine", 7, {"af": 1.0}, "method1")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(DiffmstError, match="not valid YAML"):
        load_config(str(bad))
    listy = tmp_path / "list.yaml"
    listy.write_text("- name\n- x\n")
    with pytest.raises(DiffmstError, match="mapping"):
        load_config(str(listy))


def test_a_missing_config_names_the_shipped_ones():
    shipped = sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))
    assert {"compact-method1", "compact-method2"} <= set(shipped)
    with pytest.raises(DiffmstError) as e:
        load_config("compact-method9")
    assert "compact-method9" in str(e.value) and f"shipped: {', '.join(shipped)}" in str(e.value)


def test_the_train_command_refuses_a_missing_config_listing_the_shipped_ones(tmp_path, capsys):
    code, _, err = run(["train", "--config", "nonexistent", "--run", tmp_path / "r", "-q"], capsys)
    assert code == 2 and err.startswith("diffmst: error: nonexistent") and "Traceback" not in err
    for name in ("compact-method1", "compact-method2"):
        assert name in err
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- data


def test_the_last_songs_by_name_are_held_back_for_validation(corpus):
    names = sorted(p.name for p in corpus.iterdir() if (p / "meta.json").is_file())
    assert len(names) == 4
    src = GeneratedSource(corpus)
    for n in (1, 3):
        train, val = split_songs(src, n)
        assert train == names[:-n] and val == names[-n:]
        assert not set(train) & set(val)
    for n in (4, 5):
        with pytest.raises(DiffmstError, match=f"4 songs; need more than the {n} held back"):
            split_songs(src, n)


def test_training_items_never_come_from_held_back_songs(corpus):
    cfg = TrainConfig.from_dict(tiny(corpus, val_items=3, items_per_epoch=8))
    train_set, val_set = datasets(cfg)
    train_songs, val_songs = split_songs(GeneratedSource(corpus), 1)
    seen = {train_set[i]["song"] for i in range(8)}
    assert seen <= set(train_songs) and len(seen) >= 2
    assert {val_set[i]["song"] for i in range(3)} == set(val_songs)
    # validation is Method 1 (true mix and settings known) with a seed of its own
    assert {"target", "track_params"} <= set(val_set[0]) and len(val_set) == 3 and len(train_set) == 8


def _refs(root: Path) -> dict[str, np.ndarray]:
    """Short WAVs with the same file names in several folders; each file is a distinct DC level."""
    files = {}
    for k, rel in enumerate(["a/x", "a/y", "b/x", "b/y", "ba/x"]):
        audio = np.full((2, SR // 4), 0.05 * (k + 1), np.float32)
        audio[1] *= -1
        path = root / f"{rel}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), audio.T, SR, subtype="FLOAT")
        files[(root / rel).resolve().as_posix()] = audio
    return files


def test_real_references_are_named_by_full_path_and_exclusions_match_the_end_of_it(tmp_path):
    files = _refs(tmp_path)
    folders = [str(tmp_path / f) for f in ("a", "b", "ba")]
    refs = RealReferences(folders)
    assert refs.songs() == sorted(files) and len(refs) == 5
    for name, audio in files.items():
        np.testing.assert_array_equal(refs.read(name, sample_rate=SR), audio)
        assert refs.song_name(name) == Path(name).name and refs.duration(name) == pytest.approx((SR // 4) / SR)
    a_x = (tmp_path / "a" / "x").resolve().as_posix()
    for exclude in (["a/x"], ["/a/x/"]):  # slashes around an entry do not matter
        assert RealReferences(folders, exclude).songs() == sorted(set(files) - {a_x})  # not b/x, nor ba/x
    assert RealReferences(folders, ["x"]).songs() == sorted(n for n in files if not n.endswith("/x"))


def test_real_references_refuse_to_exclude_every_song(tmp_path):
    _refs(tmp_path)
    with pytest.raises(DiffmstError, match="no reference songs left"):
        RealReferences([str(tmp_path / "a")], ["a/x", "a/y"])


def test_a_choice_of_two_datasets_is_a_pure_function_of_the_index():
    first, second = [("first", i) for i in range(2000)], [("second", i) for i in range(2000)]
    assert [Choice(first, second, 0.0)[i] for i in range(50)] == first[:50]
    assert [Choice(first, second, 1.0)[i] for i in range(50)] == second[:50]
    half = Choice(first, second, 0.3, seed=4)
    picks = [half[i] for i in range(2000)]
    assert [i for _, i in picks] == list(range(2000)) and len(half) == 2000
    share = sum(k == "second" for k, _ in picks) / 2000
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 2000)   # four standard deviations
    assert [half[i] for i in range(2000)] == picks                # drawn again: the same
    other = [Choice(first, second, 0.3, seed=5)[i][0] for i in range(2000)]
    assert other != [k for k, _ in picks]                          # the seed matters


def test_method2_draws_generated_or_real_references_for_training_songs_only(corpus, tmp_path):
    files = _refs(tmp_path / "refs")
    train_songs, _ = split_songs(GeneratedSource(corpus), 1)
    base = tiny(corpus, method="method2", loss={"af": 1.0}, items_per_epoch=6)
    generated, _ = datasets(TrainConfig.from_dict(base))
    for i in range(6):
        item = generated[i]
        assert item["song"] in train_songs and item["reference_song"] in train_songs
        assert item["reference_song"] != item["song"] and "target" not in item
        assert item["tracks"].shape[0] == 4 and 1 <= int(item["mask"].sum()) <= 4
    real, _ = datasets(TrainConfig.from_dict({**base, "references": [str(tmp_path / "refs" / "a")],
                                              "exclude_references": ["a/y"], "real_reference_prob": 1.0}))
    assert isinstance(real, Choice)
    a_x = (tmp_path / "refs" / "a" / "x").resolve().as_posix()
    assert a_x in files and {real[i]["reference_song"] for i in range(3)} == {a_x}


# ----------------------------------------------------------------------------- training


def test_the_train_command_trains_a_stage_and_exports_weights_that_load(runs):
    r = runs["straight"]
    assert r["code"] == 0 and r["steps"] == STEPS_PER_EPOCH * EPOCHS
    assert r["printed"].strip().splitlines()[-1] == str(r["dir"] / "weights.safetensors")
    model, meta = load_weights(r["dir"] / "weights.safetensors")
    assert meta == {"stage": "tiny", "steps": STEPS_PER_EPOCH * EPOCHS, "epochs": EPOCHS}
    assert model.config == runs["cfg"].model_config
    # the stage as run, with the command line's --corpus in place of the file's
    saved = yaml.safe_load((r["dir"] / "config.yaml").read_text())
    assert saved == runs["cfg"].to_dict()
    assert TrainConfig.from_dict(saved) == runs["cfg"]
    # the epochs are new items each time: indices 0 .. epochs * items_per_epoch
    assert r["items"] == list(range(EPOCHS * runs["cfg"].items_per_epoch))


def test_the_exported_weights_are_the_trained_ones(runs):
    trained, _ = load_weights(runs["straight"]["dir"] / "weights.safetensors")
    ckpt = torch.load(runs["straight"]["dir"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == STEPS_PER_EPOCH * EPOCHS
    for k, v in trained.state_dict().items():  # the last checkpoint holds the exported weights
        torch.testing.assert_close(ckpt["state_dict"][f"model.{k}"], v, rtol=0, atol=0)
    start = runs["straight"]["start"]  # the network as the first step saw it
    params = dict(trained.named_parameters())
    changed = [k for k in params if not torch.equal(start[k], params[k].detach())]
    assert len(changed) > len(params) // 2


def test_validation_logs_the_af_measure_and_the_equal_loudness_mix_beside_it(runs):
    rows = [r for r in metrics(runs["straight"]["dir"]) if r.get("val/af")]
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))
    for key in ("val/af", "val_equal/af", "val/params", "val/mrstft", "val_equal/mrstft", "val/loss",
                "val/af_rms", "val/af_crest", "val/af_width", "val/af_imbalance", "val/af_bark"):
        assert all(math.isfinite(float(r[key])) and float(r[key]) >= 0 for r in rows), key
    for r in rows:  # the AF measure is the sum of its five terms
        terms = sum(float(r[f"val/af_{t}"]) for t in ("rms", "crest", "width", "imbalance", "bark"))
        assert float(r["val/af"]) == pytest.approx(terms, rel=1e-4)
        loss = float(r["val/params"]) + 0.2 * float(r["val/mrstft"])  # the stage's loss weights
        assert float(r["val/loss"]) == pytest.approx(loss, rel=1e-4)
    # the equal-loudness mix does not change with training: the same items every epoch
    assert len({r["val_equal/af"] for r in rows}) == 1


def test_the_validation_equal_loudness_mix_keeps_stereo_files_left_and_right(corpus, monkeypatch):
    from diffmst.console import Settings
    from diffmst.console.params import MASTER_PARAMS, TRACK_PARAMS, normalize
    from diffmst.data.samplers import collate
    from diffmst.evaluate.metrics import paper_distance, paper_features
    from diffmst.train.module import mix_with

    cfg = TrainConfig.from_dict(tiny(corpus, val_items=2))
    _, val_set = datasets(cfg)
    batch = collate([val_set[0], val_set[1]])
    assert any(n.endswith(".L") for names in batch["track_names"] for n in names)  # a stereo file is heard
    module = MixModule(cfg.to_dict()).eval()
    logged = {}
    monkeypatch.setattr(module, "log", lambda k, v, **_: logged.__setitem__(k, float(v)))
    monkeypatch.setattr(module, "log_dict", lambda d, **_: logged.update({k: float(v) for k, v in d.items()}))
    with torch.no_grad():
        module.validation_step(batch, 1)
    # the project's equal-loudness settings (Settings.default: unity gains, flat, mono tracks
    # centred, stereo files hard left/right) for tracks that arrive equally loud
    n = batch["mask"].shape[1]
    defaults = [Settings.default([x or f"pad{j}" for j, x in enumerate(names)]) for names in batch["track_names"]]
    tu = normalize(torch.stack([s.track_params for s in defaults]), TRACK_PARAMS)
    mu = normalize(torch.stack([s.master_params for s in defaults]), MASTER_PARAMS)
    assert tu.shape[1] == n
    with torch.no_grad():
        mix = mix_with(batch["tracks"], tu, mu, cfg.sample_rate)
        want, _ = paper_distance(paper_features(mix.double(), cfg.sample_rate),
                                 paper_features(batch["target"].double(), cfg.sample_rate))
    assert logged["val_equal/af"] == pytest.approx(float(want), rel=1e-3)


def test_an_interrupted_stage_resumes_from_its_last_checkpoint(runs):
    r, cfg = runs["resumed"], runs["cfg"]
    first = r["first"]
    # the crash came in the second epoch: the checkpoint holds the first one
    assert first["steps"] == STEPS_PER_EPOCH and first["ckpt_step"] == STEPS_PER_EPOCH
    assert first["items"] == list(range(cfg.items_per_epoch))
    # run again: only the steps left are trained, and the weights say so
    assert r["steps"] == STEPS_PER_EPOCH * (EPOCHS - 1)
    assert load_weights(r["path"])[1] == {"stage": "tiny", "steps": STEPS_PER_EPOCH * EPOCHS, "epochs": EPOCHS}


def test_a_finished_stage_run_again_trains_nothing_more(runs):
    r = runs["again"]
    assert r["steps"] == 0
    before, meta_before = load_weights(runs["straight"]["dir"] / "weights.safetensors")
    after, meta_after = load_weights(r["path"])
    assert meta_after["steps"] == meta_before["steps"] == STEPS_PER_EPOCH * EPOCHS
    for k, v in before.state_dict().items():
        torch.testing.assert_close(after.state_dict()[k], v, rtol=0, atol=0)


def test_a_finished_stage_run_again_exports_the_same_metadata(runs):
    meta_before = load_weights(runs["straight"]["dir"] / "weights.safetensors")[1]
    assert load_weights(runs["again"]["path"])[1] == meta_before


def test_a_resumed_stage_trains_on_the_items_an_uninterrupted_one_would(runs):
    n = runs["cfg"].items_per_epoch
    assert runs["resumed"]["items"] == runs["straight"]["items"][n:]


def test_a_resumed_stage_ends_with_the_weights_of_an_uninterrupted_one(runs):
    straight, _ = load_weights(runs["straight"]["dir"] / "weights.safetensors")
    resumed, _ = load_weights(runs["resumed"]["path"])
    diffs = {k: float((resumed.state_dict()[k] - v).abs().max()) for k, v in straight.state_dict().items()}
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] == 0.0, f"{worst}: max |difference| {diffs[worst]:.3g}"


def test_a_resumed_stage_keeps_the_metrics_of_the_epochs_before_it(runs):
    assert runs["resumed"]["first"]["val_epochs"] == [0]
    assert val_epochs(runs["resumed"]["dir"]) == list(range(EPOCHS))


@pytest.mark.parametrize("changes", [{"lr": 1e-3}, {"loss": {"params": 1.0}}, {"seed": 1}])
def test_a_run_folder_made_by_another_config_is_refused(runs, changes):
    folder = runs["root"] / "refused"
    if not folder.exists():
        shutil.copytree(runs["straight"]["dir"], folder)
    saved = (folder / "config.yaml").read_text()
    other = dataclasses.replace(runs["cfg"], **changes)
    with pytest.raises(DiffmstError) as e:
        fit(other, folder, progress=False)
    msg = str(e.value)
    assert "made by another config" in msg and f"'{next(iter(changes))}':" in msg and "--run" in msg
    assert (folder / "config.yaml").read_text() == saved


def test_a_stage_that_could_not_start_does_not_bind_its_run_folder(corpus, tmp_path, capsys):
    stage = tmp_path / "tiny.yaml"
    stage.write_text(yaml.safe_dump(tiny(corpus, max_steps=1, items_per_epoch=2)))
    folder = tmp_path / "run"
    code, _, err = run(["train", "-c", stage, "--run", folder, "--corpus", tmp_path / "typo", "-q"], capsys)
    assert code == 2 and f"{tmp_path / 'typo'}: no such folder" in err
    code, _, err = run(["train", "-c", stage, "--run", folder, "--corpus", corpus, "-q"], capsys)
    assert code == 0, err


def test_a_stage_started_from_another_begins_with_its_weights(runs, tmp_path, monkeypatch):
    weights = runs["straight"]["dir"] / "weights.safetensors"
    start, _ = load_weights(weights)
    seen = []
    step = MixModule.training_step

    def first_step(module, batch, batch_idx):
        if not seen:
            seen.append(state(module.model))
        return step(module, batch, batch_idx)

    monkeypatch.setattr(MixModule, "training_step", first_step)
    cfg = dataclasses.replace(runs["cfg"], name="next", init_from=str(runs["straight"]["dir"]), max_steps=1,
                              items_per_epoch=2)
    fit(cfg, tmp_path / "next", progress=False)
    for k, v in start.state_dict().items():
        torch.testing.assert_close(seen[0][k], v, rtol=0, atol=0)


def test_init_weights_reads_weights_run_folders_and_checkpoints(runs, tmp_path):
    folder = runs["straight"]["dir"]
    want = state(load_weights(folder / "weights.safetensors")[0])
    for source in (folder, folder / "weights.safetensors", folder / "checkpoints" / "last.ckpt"):
        model = DiffMST(runs["cfg"].model_config)
        init_weights(model, source)
        got = state(model)
        assert got.keys() == want.keys()
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    # a run folder without exported weights yet: its last checkpoint
    partial = tmp_path / "partial"
    shutil.copytree(folder / "checkpoints", partial / "checkpoints")
    model = DiffMST(runs["cfg"].model_config)
    init_weights(model, partial)
    for k, v in state(model).items():
        torch.testing.assert_close(v, want[k], rtol=0, atol=0)


def test_init_weights_refuses_missing_files_and_weights_of_another_model(runs, tmp_path):
    with pytest.raises(DiffmstError, match="no weights or checkpoint"):
        init_weights(DiffMST(SMALL), tmp_path / "missing.ckpt")
    with pytest.raises(DiffmstError, match="another model config"):
        init_weights(DiffMST(SMALL), runs["straight"]["dir"] / "weights.safetensors")
    other = save_weights(DiffMST(SMALL), tmp_path / "small.safetensors")
    with pytest.raises(DiffmstError, match="another model config"):
        init_weights(DiffMST(runs["cfg"].model_config), other)


@pytest.mark.parametrize("which", ["another model's checkpoint", "not a checkpoint"])
def test_init_weights_refuses_checkpoints_it_cannot_use_with_a_clear_error(runs, tmp_path, which):
    if which == "not a checkpoint":
        path = tmp_path / "notes.ckpt"
        path.write_text("not a checkpoint\n")
    else:
        path = runs["straight"]["dir"] / "checkpoints" / "last.ckpt"
    with pytest.raises(DiffmstError):
        init_weights(DiffMST(SMALL), path)


def test_a_method2_stage_trains_on_the_af_measure_alone(corpus, tmp_path):
    _refs(tmp_path / "refs")
    cfg = TrainConfig.from_dict(tiny(corpus, name="m2", method="method2", loss={"af": 1.0}, max_steps=2,
                                     items_per_epoch=4, val_items=1, references=[str(tmp_path / "refs" / "b")],
                                     real_reference_prob=0.5))
    path = fit(cfg, tmp_path / "m2", progress=False)
    model, meta = load_weights(path)
    assert meta == {"stage": "m2", "steps": 2, "epochs": 1} and model.config == cfg.model_config
    rows = [r for r in metrics(tmp_path / "m2") if r.get("val/af")]
    # validation is still Method 1 (the true mix is known), so every loss is logged
    assert len(rows) == 1 and float(rows[0]["val/loss"]) == pytest.approx(float(rows[0]["val/af"]), rel=1e-5)
    assert math.isfinite(float(rows[0]["val/params"])) and math.isfinite(float(rows[0]["val/mrstft"]))


def test_export_writes_a_stopped_stages_weights_from_its_last_checkpoint(runs, tmp_path, capsys):
    from diffmst.train.run import export

    folder = tmp_path / "stopped"
    shutil.copytree(runs["straight"]["dir"], folder)
    (folder / "weights.safetensors").unlink()
    path = export(runs["cfg"], folder)
    before, meta_before = load_weights(runs["straight"]["dir"] / "weights.safetensors")
    after, meta_after = load_weights(path)
    assert meta_after == meta_before
    for k, v in before.state_dict().items():
        torch.testing.assert_close(after.state_dict()[k], v, rtol=0, atol=0)
    with pytest.raises(DiffmstError, match="no checkpoint to export"):
        export(runs["cfg"], tmp_path / "never-trained")
