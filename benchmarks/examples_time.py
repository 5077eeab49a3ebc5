"""Wall-clock time of the robot force-control examples in fast mode vs their budgets.

    python benchmarks/examples_time.py [--repeats 1]

Issue 5 gives each example's fast mode a time budget (60 s, 60 s, 90 s, simulator
builds and training included). Times are machine- and load-dependent, so they are
measured here rather than asserted by the tests (which check the examples' metrics).
Each example runs in this process, one after the other; with ``--repeats`` above 1 the
median is printed. The first run of the first example also pays TensorFlow's import.
"""

import argparse
import os
import pathlib
import runpy
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXAMPLES = pathlib.Path(__file__).parents[1] / "examples"
BUDGETS = {  # seconds, issue 5's acceptance
    "spiking_fk_jacobian_osc": 60,
    "sobolev_kinematics": 60,
    "adaptive_force_control": 90,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for name, budget in BUDGETS.items():
        example = runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="example")
        times = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                example["main"](fast=True, out=out)
                times.append(time.perf_counter() - start)
        rows.append((name, statistics.median(times), budget))
    print(f"\nRobot examples, fast mode (median of {args.repeats}, seconds)")
    print(f"{'example':28s} {'time':>8s} {'budget':>8s} {'time / budget':>14s}")
    for name, seconds, budget in rows:
        print(f"{name:28s} {seconds:8.1f} {budget:8d} {seconds / budget:13.2f}x")


if __name__ == "__main__":
    main()
