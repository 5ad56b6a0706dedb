#!/usr/bin/env python3
"""Set-up and everyday tasks, with nothing but Python needed.

    python3 tasks.py demo    # make .venv, install diffmst, mix the example song like a reference
    python3 tasks.py test    # make .venv, install diffmst + test deps, run the tests

Other tasks: ``bench`` (benchmarks, installs the benchmark extra), ``slow`` (slow tests),
``data`` (generate the default training corpus into ``data/corpus``; extra arguments go to
``diffmst data generate``), ``train`` (the shipped model's corpus and both training
stages, resumable: see docs/model.md).
The virtual environment is ``.venv`` here (``DIFFMST_VENV`` to change it). torch is
installed first as ``torch==2.13.0`` (``DIFFMST_TORCH`` to change the requirement), the
CPU build this project's machines keep on disk; a plain ``pip install torch`` elsewhere
may pull a multi-GB CUDA build. An existing torch in the venv is kept.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("DIFFMST_VENV", ROOT / ".venv"))
TORCH = os.environ.get("DIFFMST_TORCH", "torch==2.13.0")
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    # torch's and numba's OpenMP threads spin while waiting; with two pytest workers on two
    # cores that oversubscription made console calls several times slower. Passive waiting
    # costs nothing measurable on an idle machine (docs/benchmarks.md).
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, env=env)


def setup(extras: str = "") -> None:
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    have_torch = subprocess.run([str(PY), "-c", "import torch"], capture_output=True).returncode == 0
    if not have_torch:
        run(PY, "-m", "pip", "install", "-q", TORCH)
    run(PY, "-m", "pip", "install", "-q", "-e", f".{extras}" if extras else ".")


def main(argv: list[str]) -> int:
    task = argv[0] if argv else "help"
    rest = argv[1:]
    try:
        if task == "demo":
            setup()
            run(BIN / "diffmst", "demo", "--overwrite")
            run(BIN / "diffmst", "mix", "demo-out/tracks", "demo-out/reference.wav", "-o", "demo-out/mixed",
                "--overwrite", *rest)
            activate = str(BIN / "activate") if os.name == "nt" else f"source {BIN / 'activate'}"
            print(f"\ndiffmst is installed in {VENV}: run `{activate}` to use the `diffmst` command "
                  f"(or call {BIN / 'diffmst'} directly), then e.g. `diffmst --help`.")
        elif task == "test":
            setup("[test,train]")
            run(PY, "-m", "pytest", "-n", "2", "-q", *rest)
        elif task == "slow":
            setup("[test,bench,train]")
            run(PY, "-m", "pytest", "-q", "-m", "slow", *rest)
        elif task == "data":  # the default training corpus: 200 songs in data/corpus (resumable)
            setup("[data]")
            run(BIN / "diffmst", "data", "generate", *rest)
        elif task == "train":  # the shipped model: corpus, stage 1, stage 2 (each resumes)
            setup("[data,train]")
            run(BIN / "diffmst", "data", "generate", "--songs", "200", "--sample-rate", "22050",
                "-o", "data/corpus22", "--seed", "0")
            for stage in ("compact-method1", "compact-method2"):
                run(BIN / "diffmst", "train", "--config", stage, *rest)
        elif task == "bench":
            setup("[bench,train]")
            for script in sorted((ROOT / "benchmarks").glob("*.py")):
                run(PY, script, *rest)
        else:
            print(__doc__)
            return 0 if task in ("help", "-h", "--help") else 2
    except subprocess.CalledProcessError as e:
        return e.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
