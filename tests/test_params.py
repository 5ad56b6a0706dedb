"""Parameter table: normalisation, settings files, validation messages."""

from __future__ import annotations

import json
import math

import pytest
import torch

from diffmst.console.params import (
    MASTER_INDEX,
    MASTER_PARAMS,
    TRACK_PARAMS,
    Settings,
    SettingsError,
    denormalize,
    normalize,
)
from diffmst.errors import DiffmstError

ALL_SPECS = [(p, "track") for p in TRACK_PARAMS] + [(p, "master") for p in MASTER_PARAMS]


def _expected_u(p, v):
    """Independent normalisation: linear or geometric position of v in [min, max]."""
    if p.scale == "log":
        return math.log(v / p.min) / math.log(p.max / p.min)
    return (v - p.min) / (p.max - p.min)


def test_table_shapes_and_sanity():
    assert len(TRACK_PARAMS) == 26
    assert len(MASTER_PARAMS) == 27
    for specs in (TRACK_PARAMS, MASTER_PARAMS):
        names = [p.name for p in specs]
        assert len(set(names)) == len(names)
        for p in specs:
            assert p.min < p.max, p.name
            assert p.min <= p.default <= p.max, p.name
            assert p.scale in ("lin", "log"), p.name
            if p.scale == "log":
                assert p.min > 0, p.name


@pytest.mark.parametrize("spec,where", ALL_SPECS, ids=[f"{w}:{p.name}" for p, w in ALL_SPECS])
def test_scalar_round_trip_every_spec(spec, where):
    assert spec.normalize(spec.min) == pytest.approx(0.0, abs=1e-12)
    assert spec.normalize(spec.max) == pytest.approx(1.0, abs=1e-12)
    assert spec.denormalize(0.0) == pytest.approx(spec.min, rel=1e-12)
    assert spec.denormalize(1.0) == pytest.approx(spec.max, rel=1e-12)
    # midpoint: arithmetic for linear, geometric for log scale
    mid = math.sqrt(spec.min * spec.max) if spec.scale == "log" else (spec.min + spec.max) / 2
    assert spec.normalize(mid) == pytest.approx(0.5, abs=1e-12)
    for u in (0.0, 0.1, 0.25, 0.5, 0.77, 1.0):
        v = spec.denormalize(u)
        assert spec.min - 1e-9 <= v <= spec.max + 1e-9
        assert _expected_u(spec, v) == pytest.approx(u, abs=1e-12)
        assert spec.normalize(v) == pytest.approx(u, abs=1e-12)
    for v in (spec.min, spec.default, spec.max):
        assert spec.denormalize(spec.normalize(v)) == pytest.approx(v, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("specs", [TRACK_PARAMS, MASTER_PARAMS], ids=["track", "master"])
def test_tensor_round_trip_matches_scalar(specs):
    g = torch.Generator().manual_seed(0)
    u = torch.rand(4, 3, len(specs), generator=g, dtype=torch.float64)
    u[0, 0] = 0.0
    u[0, 1] = 1.0
    v = denormalize(u, specs)
    assert v.shape == u.shape
    expected = torch.tensor(
        [[[specs[k].denormalize(float(u[i, j, k])) for k in range(len(specs))] for j in range(3)] for i in range(4)],
        dtype=torch.float64,
    )
    torch.testing.assert_close(v, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(normalize(v, specs), u, rtol=0, atol=1e-12)
    # float32 works too, within float32 precision
    u32 = u.float()
    torch.testing.assert_close(normalize(denormalize(u32, specs), specs), u32, rtol=0, atol=2e-5)


def test_denormalize_is_differentiable():
    u = torch.full((len(TRACK_PARAMS),), 0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: denormalize(t, TRACK_PARAMS), (u,))


def _random_settings(names, seed=0):
    g = torch.Generator().manual_seed(seed)
    tp = denormalize(torch.rand(len(names), len(TRACK_PARAMS), generator=g, dtype=torch.float64), TRACK_PARAMS)
    mp = denormalize(torch.rand(len(MASTER_PARAMS), generator=g, dtype=torch.float64), MASTER_PARAMS)
    return Settings(list(names), tp.float(), mp.float())


def test_settings_json_round_trip(tmp_path):
    s = _random_settings(["kick", "snare", "gtr.L", "gtr.R", "vocal lead"])
    path = tmp_path / "mix.json"
    s.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "diffmst-settings"
    assert data["version"] == 2
    # nested, readable
    assert set(data["tracks"]) == {"kick", "snare", "gtr.L", "gtr.R", "vocal lead"}
    kick = data["tracks"]["kick"]
    assert set(kick) == {"gain_db", "eq", "compressor", "pan"}
    assert set(kick["eq"]) == {"low_shelf", "band0", "band1", "band2", "band3", "high_shelf"}
    assert set(kick["eq"]["band1"]) == {"gain_db", "freq_hz", "q"}
    assert kick["gain_db"] == pytest.approx(float(s.track_params[0, 0]), abs=1e-5)
    assert data["master"]["gain_db"] == pytest.approx(float(s.master_params[MASTER_INDEX["gain_db"]]), abs=1e-5)
    assert set(data["master"]["limiter"]) == {"ceiling_db", "release_ms"}

    t = Settings.load(path)
    assert t.track_names == s.track_names
    torch.testing.assert_close(t.track_params, s.track_params, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(t.master_params, s.master_params, rtol=1e-6, atol=1e-5)
    # dict round trip too
    u = Settings.from_dict(s.to_dict())
    torch.testing.assert_close(u.track_params, s.track_params, rtol=1e-6, atol=1e-5)


def test_version_1_files_read_with_the_limiter_at_its_defaults_and_other_versions_are_refused(tmp_path):
    s = _random_settings(["kick", "bass"])
    data = s.to_dict()
    del data["master"]["limiter"]
    data["version"] = 1
    t = Settings.from_dict(data)
    for name in ("limiter.ceiling_db", "limiter.release_ms"):
        assert float(t.master_params[MASTER_INDEX[name]]) == MASTER_PARAMS[MASTER_INDEX[name]].default
    data["version"] = 2  # a version-2 file must have the limiter
    with pytest.raises(SettingsError, match="limiter"):
        Settings.from_dict(data)
    for bad in (3, "2", True):
        data = s.to_dict()
        data["version"] = bad
        with pytest.raises(SettingsError, match="version"):
            Settings.from_dict(data)


def test_settings_round_trip_extremes(tmp_path):
    """Values exactly at the range limits survive the trip (no rounding out of range)."""
    names = ["a", "b"]
    tp = torch.stack([torch.tensor([p.min for p in TRACK_PARAMS]), torch.tensor([p.max for p in TRACK_PARAMS])])
    mp = torch.tensor([p.max for p in MASTER_PARAMS])
    s = Settings(names, tp.float(), mp.float())
    s.save(tmp_path / "x.json")
    t = Settings.load(tmp_path / "x.json")
    torch.testing.assert_close(t.track_params, s.track_params)
    torch.testing.assert_close(t.master_params, s.master_params)


def test_default_settings_pan_stereo_pairs():
    s = Settings.default(["bass", "gtr.L", "gtr.R", "vox"])
    pan = [p.name for p in TRACK_PARAMS].index("pan")
    assert s.track_params[:, pan].tolist() == [0.5, 0.0, 1.0, 0.5]
    defaults = torch.tensor([p.default for p in TRACK_PARAMS])
    for i in (0, 3):
        torch.testing.assert_close(s.track_params[i], defaults)
    torch.testing.assert_close(s.master_params, torch.tensor([p.default for p in MASTER_PARAMS]))
    # a default console is neutral: no gain, flat EQ, ratio 1
    names = [p.name for p in TRACK_PARAMS]
    assert s.track_params[0, names.index("gain_db")] == 0
    assert s.track_params[0, names.index("compressor.ratio")] == 1
    for k, n in enumerate(names):
        if n.startswith("eq.") and n.endswith("gain_db"):
            assert s.track_params[0, k] == 0


def test_save_refuses_to_overwrite(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("precious")
    s = Settings.default(["a"])
    with pytest.raises(DiffmstError) as e:
        s.save(path)
    assert str(path) in str(e.value)
    assert path.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]  # no temp file left
    s.save(path, overwrite=True)
    assert Settings.load(path).track_names == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def _valid_dict():
    return Settings.default(["kick", "bass"]).to_dict()


def _raises_naming(data, *needles):
    with pytest.raises(SettingsError) as e:
        Settings.from_dict(data)
    msg = str(e.value)
    for n in needles:
        assert n in msg, (n, msg)
    return msg


def test_unknown_parameter_named():
    d = _valid_dict()
    d["tracks"]["bass"]["eq"]["band1"]["gain"] = 3.0
    _raises_naming(d, "eq.band1.gain", "bass")
    d = _valid_dict()
    d["master"]["compressor"]["lookahead_ms"] = 3.0
    _raises_naming(d, "compressor.lookahead_ms", "master")


def test_missing_parameter_named():
    d = _valid_dict()
    del d["tracks"]["kick"]["compressor"]["release_ms"]
    _raises_naming(d, "compressor.release_ms", "kick")
    d = _valid_dict()
    del d["master"]["gain_db"]
    _raises_naming(d, "gain_db", "master")


@pytest.mark.parametrize(
    "path,value",
    [
        (("gain_db",), 30.0),
        (("gain_db",), -49.0),
        (("pan",), 1.5),
        (("eq", "band2", "freq_hz"), 7999.0),
        (("eq", "low_shelf", "q"), 0.05),
        (("compressor", "ratio"), 0.5),
        (("compressor", "attack_ms"), 300),
    ],
)
def test_out_of_range_named(path, value):
    d = _valid_dict()
    node = d["tracks"]["bass"]
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    msg = _raises_naming(d, ".".join(path), "bass")
    assert "range" in msg


@pytest.mark.parametrize("value", ["3", None, True, [1.0], float("nan"), float("inf")])
def test_non_number_named(value):
    d = _valid_dict()
    d["tracks"]["kick"]["eq"]["high_shelf"]["q"] = value
    _raises_naming(d, "eq.high_shelf.q", "kick")


def test_non_number_from_file_named(tmp_path):
    d = _valid_dict()
    d["master"]["compressor"]["knee_db"] = "six"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(SettingsError) as e:
        Settings.load(path)
    assert "compressor.knee_db" in str(e.value)
    assert str(path) in str(e.value)


def test_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format": "diffmst-settings",\n "tracks": {,}}\n')
    with pytest.raises(SettingsError) as e:
        Settings.load(path)
    msg = str(e.value)
    assert str(path) in msg
    assert "line 2" in msg


def test_missing_file(tmp_path):
    with pytest.raises(SettingsError) as e:
        Settings.load(tmp_path / "nope.json")
    assert "nope.json" in str(e.value)


def test_structural_errors():
    with pytest.raises(SettingsError):
        Settings.from_dict([1, 2])
    d = _valid_dict()
    d["format"] = "something-else"
    _raises_naming(d, "format")
    d = _valid_dict()
    del d["master"]
    _raises_naming(d, "master")
    d = _valid_dict()
    d["tracks"] = {}
    _raises_naming(d, "tracks")
    d = _valid_dict()
    d["tracks"]["kick"]["eq"] = 3.0  # a group given as a number
    with pytest.raises(SettingsError):
        Settings.from_dict(d)


def test_for_tracks_reorders_and_names_missing():
    s = _random_settings(["a", "b", "c"], seed=3)
    torch.testing.assert_close(s.for_tracks(["c", "a"]), s.track_params[[2, 0]])
    with pytest.raises(SettingsError) as e:
        s.for_tracks(["a", "zz"])
    assert "zz" in str(e.value)
