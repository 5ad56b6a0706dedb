"""Speed of the diffmst console against the paper's dasp-pytorch console, and of ``render``.

Run from the repository root::

    pip install -e .[bench]          # dasp-pytorch, benchmark-only
    python benchmarks/console_speed.py           # full run (a few minutes on 2 cores)
    python benchmarks/console_speed.py --quick   # smoke run (seconds)

Part 1 (differentiable consoles, same input, same settings, same thread count):

* ours: ``diffmst.console.console(..., eq_method="fft")``;
* dasp: the Diff-MST paper's console built from ``dasp_pytorch.functional``: per track
  ``gain -> parametric_eq -> compressor -> stereo_panner``, sum, master
  ``parametric_eq -> compressor`` (dasp's summed side chain) ``-> gain``.

"forward" is the forward pass with parameters that require grad (graph built, as in
training); "fwd+bwd" adds ``loss.backward()`` for ``loss = mean(mix ** 2)``. Each number
is the median (and min) wall time of ``--repeats`` runs after ``--warmup`` runs; the runs
of the four measurements are interleaved round robin, so a change in machine load during
the benchmark hits ours and dasp's alike. Both run in this process with
``torch.set_num_threads(--threads)`` (numba uses the same count).

Part 2 (run first): ``diffmst.console.render`` on a whole song (default 16 tracks x 4 min
at 48 kHz) in a child process. Its peak resident set is read two ways: the child's own
``VmHWM`` (``/proc/self/status``), and the kernel's rusage of exactly that child
(``os.wait4``: ``ru_maxrss``, what ``getrusage(RUSAGE_CHILDREN)`` gives for one child).
The second is only an upper bound: Linux carries the parent's high-water mark across
fork/exec into the child's ``ru_maxrss``, which is why this part runs before the dasp
timings grow the parent. The child also reports its resident set just before rendering
(interpreter + torch + kernels, then + the input tracks), so the render's own share is
shown separately. A short child runs first to fill numba's cache, so the measured one
loads compiled kernels instead of compiling them.

Part 3: numba compile time of the console's kernels on first use, measured in child
processes with an empty ``NUMBA_CACHE_DIR`` (cold compile) and then again with that
cache filled (what every later run pays, since the kernels use ``cache=True``).
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

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))  # runnable without installing the package

from diffmst.console import MASTER_PARAMS, TRACK_PARAMS, console, denormalize, render  # noqa: E402
from diffmst.console.params import MASTER_INDEX, TRACK_INDEX  # noqa: E402

BANDS = ("low_shelf", "band0", "band1", "band2", "band3", "high_shelf")


# ----------------------------------------------------------------------------- inputs


def make_tracks(batch: int, n_tracks: int, n: int, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """Noise with a slow random envelope (so the compressors attack and release)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_tracks, 1, n, generator=g)
    hop = sample_rate // 20  # 50 ms envelope segments
    env = torch.rand(batch, n_tracks, 1, n // hop + 2, generator=g) ** 2
    env = torch.nn.functional.interpolate(env.view(-1, 1, env.shape[-1]), size=n, mode="linear", align_corners=False)
    return (0.3 * x * env.view(batch, n_tracks, 1, n)).contiguous()


def make_params(batch: int, n_tracks: int, seed: int = 1):
    """Random plausible settings in real units (normalised values drawn from [0.1, 0.9])."""
    g = torch.Generator().manual_seed(seed)
    u_t = 0.1 + 0.8 * torch.rand(batch, n_tracks, len(TRACK_PARAMS), generator=g, dtype=torch.float64)
    u_m = 0.1 + 0.8 * torch.rand(batch, len(MASTER_PARAMS), generator=g, dtype=torch.float64)
    tp = denormalize(u_t, TRACK_PARAMS).float()
    mp = denormalize(u_m, MASTER_PARAMS).float()
    return tp, mp


# ----------------------------------------------------------------------------- dasp console


def _eq_kwargs(p: torch.Tensor, index: dict, prefix: str = "eq") -> dict:
    kw = {}
    for band in BANDS:
        kw[f"{band}_gain_db"] = p[..., index[f"{prefix}.{band}.gain_db"]].reshape(-1)
        kw[f"{band}_cutoff_freq"] = p[..., index[f"{prefix}.{band}.freq_hz"]].reshape(-1)
        kw[f"{band}_q_factor"] = p[..., index[f"{prefix}.{band}.q"]].reshape(-1)
    return kw


def _comp_kwargs(p: torch.Tensor, index: dict, prefix: str = "compressor") -> dict:
    c = lambda name: p[..., index[f"{prefix}.{name}"]].reshape(-1)  # noqa: E731
    return dict(
        threshold_db=c("threshold_db"),
        ratio=c("ratio"),
        attack_ms=c("attack_ms"),
        release_ms=c("release_ms"),
        knee_db=c("knee_db"),
        makeup_gain_db=c("makeup_db"),
    )


def dasp_console(tracks: torch.Tensor, tp: torch.Tensor, mp: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """The paper's console with dasp-pytorch effects; same parameters (real units) as ours."""
    import dasp_pytorch.functional as F

    b, t, _, n = tracks.shape
    x = tracks.reshape(b * t, 1, n)
    x = F.gain(x, sample_rate, tp[..., TRACK_INDEX["gain_db"]].reshape(-1))
    x = F.parametric_eq(x, sample_rate, **_eq_kwargs(tp, TRACK_INDEX))
    x = F.compressor(x, sample_rate, **_comp_kwargs(tp, TRACK_INDEX))
    x = F.stereo_panner(x.view(b, t, n), sample_rate, tp[..., TRACK_INDEX["pan"]])  # (b, 2, t, n)
    mix = x.sum(dim=2)  # (b, 2, n)
    mix = F.parametric_eq(mix, sample_rate, **_eq_kwargs(mp, MASTER_INDEX))
    mix = F.compressor(mix, sample_rate, **_comp_kwargs(mp, MASTER_INDEX))
    return F.gain(mix, sample_rate, mp[..., MASTER_INDEX["gain_db"]])


def ours_console(tracks, tp, mp, sample_rate):
    return console(tracks, tp, mp, sample_rate, eq_method="fft")[0]


# ----------------------------------------------------------------------------- timing


def _closures(impl, tracks, tp, mp, sample_rate):
    tp = tp.clone().requires_grad_(True)
    mp = mp.clone().requires_grad_(True)

    def fwd():
        return impl(tracks, tp, mp, sample_rate)

    def fwd_bwd():
        tp.grad = mp.grad = None
        impl(tracks, tp, mp, sample_rate).square().mean().backward()

    return {"fwd": fwd, "fb": fwd_bwd}


def time_interleaved(fns: dict, warmup: int, repeats: int) -> dict:
    """Median and min wall time (ms) of each function; the repeats of all functions are
    interleaved (round robin), so a change in machine load hits them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(1e3 * (time.perf_counter() - t0))
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def part1(args) -> list[dict]:
    try:
        import dasp_pytorch.functional  # noqa: F401
    except ImportError as e:
        print(
            f"\n*** dasp-pytorch is not importable ({e}).\n"
            "*** It is a benchmark-only extra: install it with  pip install -e .[bench]\n"
            "*** Skipping the dasp comparison; timing our console only.\n"
        )
        have_dasp = False
    else:
        have_dasp = True
    sr = args.train_sr
    n = int(args.seconds * sr)
    rows = []
    for batch in args.batches:
        tracks = make_tracks(batch, args.tracks, n, sr)
        tp, mp = make_params(batch, args.tracks)
        fns = {f"ours_{k}": f for k, f in _closures(ours_console, tracks, tp, mp, sr).items()}
        row = {"batch": batch}
        if have_dasp:
            fns.update({f"dasp_{k}": f for k, f in _closures(dasp_console, tracks, tp, mp, sr).items()})
            with torch.no_grad():
                row["rms_ours_db"] = 10 * torch.log10(ours_console(tracks, tp, mp, sr).square().mean()).item()
                row["rms_dasp_db"] = 10 * torch.log10(dasp_console(tracks, tp, mp, sr).square().mean()).item()
        row.update(time_interleaved(fns, args.warmup, args.repeats))
        rows.append(row)
        print(f"  batch {batch}: done", flush=True)
    print(
        f"\nDifferentiable console: {args.tracks} tracks x {args.seconds:g} s at {sr} Hz, torch threads "
        f"{torch.get_num_threads()}; median (min) wall ms of {args.repeats} interleaved runs after "
        f"{args.warmup} warm-up"
    )
    print("| batch | pass    | ours (ms)       | dasp (ms)         | dasp / ours (median) |")
    print("|------:|---------|----------------:|------------------:|---------------------:|")
    for r in rows:
        for key, name in (("fwd", "forward"), ("fb", "fwd+bwd")):
            o, o_min = r[f"ours_{key}"]
            ours = f"{o:7.1f} ({o_min:6.1f})"
            if have_dasp:
                d, d_min = r[f"dasp_{key}"]
                print(f"| {r['batch']:5d} | {name:7s} | {ours} | {d:7.1f} ({d_min:7.1f}) | {d / o:19.1f}x |")
            else:
                print(f"| {r['batch']:5d} | {name:7s} | {ours} |                 - |                    - |")
    if have_dasp:
        for r in rows:
            print(
                f"  (batch {r['batch']}: mix RMS ours {r['rms_ours_db']:.1f} dB, dasp {r['rms_dasp_db']:.1f} dB; "
                "they differ by design: release ballistics, master side chain, EQ design precision)"
            )
    return rows


# ----------------------------------------------------------------------------- render (child process)


def _proc_status_kb(field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, KiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def render_child(args) -> None:
    """Runs in a child process: allocate a song, render it, print one JSON line."""
    sr = args.render_sr
    n = int(args.render_seconds * sr)
    tp, mp = make_params(1, args.render_tracks, seed=2)
    # load the (cached) kernels on a short input so the timing is steady-state
    render(make_tracks(1, args.render_tracks, sr, sr), tp, mp, sr)
    rss_warm = _proc_status_kb("VmRSS")
    tracks = torch.empty(1, args.render_tracks, 1, n)
    g = torch.Generator().manual_seed(3)
    for i in range(args.render_tracks):  # fill track by track: no big temporaries
        tracks[0, i, 0] = _cheap_noise(n, g)
    rss_input = _proc_status_kb("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    mix = render(tracks, tp, mp, sr)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert torch.isfinite(mix).all()
    print(
        json.dumps(
            dict(elapsed=elapsed, cpu=cpu, duration=n / sr, rss_warm_kb=rss_warm, rss_input_kb=rss_input,
                 hwm_kb=_proc_status_kb("VmHWM"), input_mb=tracks.numel() * 4 / 2**20,
                 output_mb=mix.numel() * 4 / 2**20)
        )
    )


def _cheap_noise(n: int, g: torch.Generator) -> torch.Tensor:
    """Noise with a 50 ms-step envelope, built in place (no float64 temporaries)."""
    x = torch.randn(n, generator=g).mul_(0.3)
    hop = 2400
    env = torch.rand(n // hop + 1, generator=g).square_()
    x.view(-1)[: (n // hop) * hop].view(-1, hop).mul_(env[: n // hop, None])
    return x


def part2(args) -> dict:
    base = [
        sys.executable, os.path.abspath(__file__), "--render-child", "--threads", str(args.threads),
        "--render-tracks", str(args.render_tracks), "--render-sr", str(args.render_sr),
    ]
    # a first short child fills numba's cache, so the measured child only loads kernels
    # (compiling them would add LLVM's memory to its peak)
    subprocess.run(base + ["--render-seconds", "1"], capture_output=True, text=True, check=True)
    with tempfile.TemporaryFile("w+") as out:
        cmd = base + ["--render-seconds", str(args.render_seconds)]
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, text=True)
        # rusage of exactly this child: ru_maxrss is its peak resident set (KiB on Linux)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        print(text)
        raise SystemExit("render child failed")
    child_peak_kb = usage.ru_maxrss
    r = json.loads(text.strip().splitlines()[-1])
    mb = lambda kb: kb / 1024  # noqa: E731
    ratio = r["elapsed"] / r["duration"]
    print(
        f"\nrender: {args.render_tracks} tracks x {r['duration'] / 60:g} min at {args.render_sr} Hz "
        f"(block-wise exact IIR EQ + compressor), torch threads {args.threads}"
    )
    print("| quantity | value | target |")
    print("|---|---:|---:|")
    print(f"| render time (wall) | {r['elapsed']:.2f} s | |")
    print(f"| render time / audio duration | {ratio:.4f} | <= 0.02 |")
    print(f"| CPU time of the render (all threads) / audio duration | {r['cpu'] / r['duration']:.4f} | |")
    print(f"| peak RSS of the render process (its /proc VmHWM) | {mb(r['hwm_kb']):.0f} MiB | < 3 GB |")
    print(f"| (the same as wait4 ru_maxrss, an upper bound: includes the parent's peak) | "
          f"{mb(child_peak_kb):.0f} MiB | |")
    print(f"| RSS before the input: interpreter + torch + kernels | {mb(r['rss_warm_kb']):.0f} MiB | |")
    print(f"| RSS with the input tracks allocated ({r['input_mb']:.0f} MiB float32) | "
          f"{mb(r['rss_input_kb']):.0f} MiB | |")
    print(f"| peak minus RSS with input = render's own memory (output {r['output_mb']:.0f} MiB + blocks) | "
          f"{mb(r['hwm_kb'] - r['rss_input_kb']):.0f} MiB | |")
    r.update(child_peak_kb=child_peak_kb, ratio=ratio)
    return r


# ----------------------------------------------------------------------------- numba compile time

_COMPILE_SNIPPET = r"""
import time, sys, torch
t0 = time.perf_counter()
sys.path.insert(0, {src!r})
from diffmst.console import console, render, TRACK_PARAMS, MASTER_PARAMS
from diffmst.console.params import defaults
t1 = time.perf_counter()
x = torch.randn(1, 2, 1, 4410) * 0.1
tp = defaults(TRACK_PARAMS, 1, 2).requires_grad_(); mp = defaults(MASTER_PARAMS, 1).requires_grad_()
console(x, tp, mp, 44100)[0].sum().backward()
render(x, tp.detach(), mp.detach(), 44100)
t2 = time.perf_counter()
console(x, tp, mp, 44100)[0].sum().backward()
render(x, tp.detach(), mp.detach(), 44100)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def part3(args) -> None:
    code = _COMPILE_SNIPPET.format(src=os.path.join(REPO, "src"))
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        res = []
        for _ in range(2):  # cold cache, then warm cache
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
            if p.returncode != 0:
                print(p.stderr)
                raise SystemExit("compile-time child failed")
            res.append([float(v) for v in p.stdout.split()])
    print("\nnumba kernels on first use (fresh process, tiny input; first call minus second call)")
    print("| cache | import diffmst.console (s) | first console fwd+bwd + render (s) | same, second call (s) |")
    print("|---|---:|---:|---:|")
    for name, (imp, first, second) in zip(("cold (empty NUMBA_CACHE_DIR)", "warm (cache=True filled)"), res):
        print(f"| {name} | {imp:.2f} | {first:.2f} | {second:.3f} |")


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke test)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (and numba threads)")
    ap.add_argument("--tracks", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--train-sr", type=int, default=44100)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--render-tracks", type=int, default=16)
    ap.add_argument("--render-seconds", type=float, default=240.0)
    ap.add_argument("--render-sr", type=int, default=48000)
    ap.add_argument("--skip", nargs="*", default=[], choices=["console", "render", "compile"])
    ap.add_argument("--render-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.batches, args.warmup, args.repeats = 1.0, [1], 1, 2
        args.render_seconds = 20.0
    import numba

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    if args.render_child:
        render_child(args)
        return

    print("command:", " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable)] + sys.argv))
    print(
        f"machine: {_cpu_name()}, {os.cpu_count()} logical CPUs; "
        f"python {platform.python_version()}, torch {torch.__version__}, numba {numba.__version__} "
        f"(threading layer {numba.config.THREADING_LAYER!r}, threads {numba.get_num_threads()}), "
        f"torch threads {torch.get_num_threads()}"
    )
    print("load average at start (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())
    # render first: a child's ru_maxrss also counts the parent's peak resident set at the
    # time of the fork/exec (Linux carries the old mm's high-water mark into the exec'd
    # process), and the dasp timings below take the parent to several GB
    if "render" not in args.skip:
        part2(args)
    if "console" not in args.skip:
        part1(args)
    if "compile" not in args.skip:
        part3(args)
    print("\nload average at end (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
