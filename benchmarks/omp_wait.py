"""OpenMP wait policy: console forward+backward with torch/numba threads spinning (default,
ACTIVE) vs sleeping (PASSIVE), each in a fresh process, alternated, one run.

    python benchmarks/omp_wait.py

The policy must be set before torch/numba start their threads, hence the subprocesses.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

CHILD = r"""
import time, torch
from diffmst.console import console, TRACK_PARAMS, MASTER_PARAMS
from diffmst.console.params import defaults
torch.manual_seed(0)
x = torch.randn(1, 8, 1, 44100 * 5) * 0.1
tp = defaults(TRACK_PARAMS, 1, 8).requires_grad_(); mp = defaults(MASTER_PARAMS, 1).requires_grad_()
for _ in range(3): console(x, tp, mp, 44100)[0].sum().backward()
ts = []
for _ in range(7):
    t = time.perf_counter(); console(x, tp, mp, 44100)[0].sum().backward(); ts.append(time.perf_counter() - t)
print(sorted(ts)[3] * 1000)
"""


def run(policy: str) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    return float(subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                                check=True).stdout.strip())


def main() -> None:
    res: dict[str, list[float]] = {"ACTIVE": [], "PASSIVE": []}
    for _ in range(3):
        for policy in res:
            res[policy].append(run(policy))
    print(f"load average {os.getloadavg()[0]:.2f}; 8 tracks x 5 s at 44.1 kHz, fwd+bwd, median of 7 per process")
    for policy, v in res.items():
        print(f"{policy:8s} {statistics.median(v):7.1f} ms  (processes: {', '.join(f'{x:.1f}' for x in v)})")
    print(f"PASSIVE / ACTIVE: {statistics.median(res['PASSIVE']) / statistics.median(res['ACTIVE']):.2f}")


if __name__ == "__main__":
    main()
