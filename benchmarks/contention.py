"""``diffmst optimize`` and ``diffmst render`` on an idle machine and beside busy processes,
with and without the library's OpenMP settings (``diffmst.threads``), side by side in one run.

Run from the repository root::

    python benchmarks/contention.py                 # 30 steps, 0/1/2 busy processes (~5 minutes on 2 cores)
    python benchmarks/contention.py --steps 5 --busy 0 1   # smoke run

Set-up: ``diffmst demo`` writes the demo song (tracks, settings, mix) into a temporary
folder; a first ``optimize --steps 1`` and ``render`` fill numba's cache, so no measured
run compiles. Each measured command is a fresh ``diffmst`` process (as a user runs it):

* ``optimize TRACKS DEMO/mix.wav --steps N`` (the demo's own mix as the reference);
* ``render TRACKS --params DEMO/settings.json``.

Loads (``--busy``): 0, 1 or 2 busy processes, each a pure-Python spin loop (one CPU-bound
thread, as another job would be), started before and stopped after that load's runs.
Variants (``--variants``), run alternately within each load, so a change in the rest of
the machine's load hits both alike:

* ``fix``: the library as shipped (``import diffmst`` sets ``OMP_WAIT_POLICY=PASSIVE``,
  ``KMP_BLOCKTIME=0``);
* ``off``: ``DIFFMST_OMP_DEFAULTS=0``, the OpenMP runtimes' own defaults (threads spin
  before they sleep).

Both start from the caller's environment minus ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` and
``KMP_BLOCKTIME`` (``tasks.py`` sets one for the tasks it runs). Printed per load and
variant: the median over ``--repeats`` of the command's wall time, the optimisation loop
alone (``timings_s.optimize`` of report.json), the process's CPU time (user + system, all
threads: what spinning shows in), each as a ratio to the same variant's idle time, and
the optimize time as a ratio to the idle time with the fix (the off variant's own idle
time is already inflated when other jobs share the machine).
The load average is printed at the start and end: other jobs on the machine count too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")  # = diffmst.threads.WAIT_VARS
SWITCH = "DIFFMST_OMP_DEFAULTS"  # = diffmst.threads.SWITCH
VARIANTS = {"fix": {}, "off": {SWITCH: "0"}}
BUSY = "while True: pass"


def child_env(src: str, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARS and k != SWITCH}
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def diffmst(args_: list[str], env: dict) -> tuple[float, float]:
    """Run ``diffmst ARGS`` (this interpreter, ``-m diffmst.cli``); wall and CPU seconds."""
    cmd = [sys.executable, "-m", "diffmst.cli"] + args_
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # rusage of exactly this child (all its threads)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            out.seek(0)
            print(out.read())
            raise SystemExit(f"failed: {shlex.join(cmd)}")
    return wall, usage.ru_utime + usage.ru_stime


def start_busy(n: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(n)]
    time.sleep(1.0)  # let them reach the loop
    return procs


def stop_busy(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def measure(args, demo: str, work: str) -> dict:
    tracks, ref, settings = os.path.join(demo, "tracks"), os.path.join(demo, "mix.wav"), os.path.join(demo, "settings.json")
    opt_args = ["optimize", tracks, ref, "-o", os.path.join(work, "opt"), "--steps", str(args.steps), "--no-plot",
                "--quiet", "--overwrite"]
    render_args = ["render", tracks, "--params", settings, "-o", os.path.join(work, "render.wav"), "--quiet",
                   "--overwrite"]
    res: dict = {}
    for busy in args.busy:
        procs = start_busy(busy)
        try:
            for rep in range(args.repeats):
                for var in args.variants:
                    env = child_env(args.src, VARIANTS[var])
                    wall, cpu = diffmst(opt_args, env)
                    with open(os.path.join(work, "opt", "report.json")) as f:
                        loop = json.load(f)["timings_s"]["optimize"]
                    r_wall, r_cpu = diffmst(render_args, env)
                    row = res.setdefault((busy, var), {k: [] for k in ("opt", "loop", "opt_cpu", "render", "render_cpu")})
                    for k, v in zip(row, (wall, loop, cpu, r_wall, r_cpu)):
                        row[k].append(v)
                    print(f"  {busy} busy, {var}, run {rep + 1}: optimize {wall:.1f} s (loop {loop:.1f} s, "
                          f"CPU {cpu:.1f} s), render {r_wall:.1f} s; load {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            stop_busy(procs)
    return {key: {k: statistics.median(v) for k, v in row.items()} for key, row in res.items()}


def table(res: dict, args) -> None:
    print(
        f"\n`diffmst optimize` (demo, {args.steps} steps) and `diffmst render` (demo), wall seconds of the whole "
        f"command (median of {args.repeats}); (xN) = ratio to the same variant with 0 busy processes"
    )
    print("| busy processes | variant | optimize (s) | loop only (s) | optimize CPU (s) | render (s) | off / fix (optimize) "
          "| optimize / idle fix |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")

    def cell(busy, var, key):
        v, idle = res[(busy, var)][key], res.get((args.busy[0], var), {}).get(key)
        return f"{v:.1f} (x{v / idle:.1f})" if idle else f"{v:.1f}"

    for busy in args.busy:
        for var in args.variants:
            both = all((busy, v) in res for v in ("fix", "off"))
            rel = f"{res[(busy, 'off')]['opt'] / res[(busy, 'fix')]['opt']:.2f}" if both and var == "off" else ""
            fix_idle = res.get((args.busy[0], "fix"), {}).get("opt")
            vs_fix = f"{res[(busy, var)]['opt'] / fix_idle:.1f}" if fix_idle else ""
            print(f"| {busy} | {var} | {cell(busy, var, 'opt')} | {cell(busy, var, 'loop')} | "
                  f"{cell(busy, var, 'opt_cpu')} | {cell(busy, var, 'render')} | {rel} | {vs_fix} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="optimize --steps")
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="numbers of busy processes (first: idle)")
    ap.add_argument("--variants", nargs="+", default=["fix", "off"], choices=list(VARIANTS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--src", default=os.path.join(REPO, "src"), help="diffmst sources to run (default: this repo's)")
    args = ap.parse_args()
    print("command:", " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable)] + sys.argv))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs "
          f"({len(os.sched_getaffinity(0))} usable); python {platform.python_version()}")
    print("load average at start (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    with tempfile.TemporaryDirectory() as work:
        demo = os.path.join(work, "demo")
        env = child_env(args.src, {})
        diffmst(["demo", "-o", demo], env)
        # fill numba's cache (and the OS's file cache) so that no measured run compiles
        warm = ["optimize", os.path.join(demo, "tracks"), os.path.join(demo, "mix.wav"), "-o",
                os.path.join(work, "opt"), "--steps", "1", "--no-plot", "--quiet", "--overwrite"]
        diffmst(warm, env)
        res = measure(args, demo, work)
    table(res, args)
    print("\nload average at end (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
