"""The shipped weights: they load from the install, fit their config, and the network alone
mixes the example song closer to its reference than equal loudness does."""

import numpy as np
import pytest

from diffmst.model import COMPACT
from diffmst.model.weights import SHIPPED, load_model


def test_the_shipped_weights_load_with_the_compact_config_and_stay_small():
    model, meta = load_model()
    assert model.config == COMPACT
    assert SHIPPED.stat().st_size < 30 * 2**20
    assert meta["stage"] == "compact-method2" and meta["steps"] > 0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from diffmst.cli import main

    out = tmp_path_factory.mktemp("demo") / "d"
    assert main(["demo", "-o", str(out)]) == 0
    return out


def test_the_network_alone_mixes_the_example_song_closer_to_its_reference_than_equal_loudness(demo):
    import torch

    from diffmst import equal_loudness_mix, predict
    from diffmst.audio import load_tracks, read_audio
    from diffmst.console import MASTER_PARAMS, TRACK_PARAMS, render
    from diffmst.evaluate import paper_af

    settings = predict(demo / "tracks", demo / "reference.wav")
    for specs, v in ((TRACK_PARAMS, settings.track_params), (MASTER_PARAMS, settings.master_params)):
        lo = torch.tensor([p.min for p in specs])
        hi = torch.tensor([p.max for p in specs])
        assert torch.isfinite(v).all() and ((v >= lo) & (v <= hi)).all()
    tracks = load_tracks([demo / "tracks"])
    ref, ref_sr = read_audio(demo / "reference.wav")
    mix = render(torch.from_numpy(tracks.audio)[None, :, None], settings.track_params[None],
                 settings.master_params[None], tracks.sample_rate)[0].numpy()
    equal, _ = equal_loudness_mix(tracks)
    net_af = paper_af(mix, ref, tracks.sample_rate, ref_sr)["total"]
    equal_af = paper_af(equal, ref, tracks.sample_rate, ref_sr)["total"]
    assert np.isfinite(net_af) and net_af < equal_af, (net_af, equal_af)
