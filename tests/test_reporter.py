"""One Reporter for notices and progress: the CLI's prints, Collect keeps, the base drops."""

from diffmst.cli.common import RichReporter
from diffmst.console import render
from diffmst.pipeline.reporter import Collect, Reporter


def test_collect_keeps_notices_and_the_last_update_of_each_task():
    r = Collect()
    r.notice("a track was resampled")
    with r.task("optimising", 10, loss="...") as update:
        for step in range(1, 4):
            update(step, 10, loss=f"{1 / step:.2f}")
    assert r.notices == ["a track was resampled"]
    assert r.tasks["optimising"] == {"done": 3, "total": 10, "loss": "0.33"}


def test_the_base_reporter_drops_everything():
    r = Reporter()
    r.notice("x")
    with r.task("rendering") as update:
        update(1, 2, anything=3)


def test_render_reports_its_blocks_through_a_task():
    import torch

    r = Collect()
    x = torch.zeros(1, 2, 1, 44100 * 3)
    from diffmst.console import MASTER_PARAMS, TRACK_PARAMS
    from diffmst.console.params import defaults

    with r.task("rendering") as update:
        render(x, defaults(TRACK_PARAMS, 2)[None], defaults(MASTER_PARAMS)[None], 44100, progress=update)
    done = r.tasks["rendering"]
    assert done["total"] and done["done"] == done["total"]


def test_the_cli_reporter_prints_notices_and_no_bar_when_quiet(capsys):
    r = RichReporter(quiet=True)
    r.notice("mono reference")
    with r.task("optimising", 5, loss="...") as update:
        update(5, 5, loss="0.1")
    out, err = capsys.readouterr()
    assert out == "" and err == "diffmst: note: mono reference\n"
