"""Points per second of `nengo_jacobian.sweep`: the serial loop, 1 and 2 Dask workers.

    python benchmarks/sweep_speed.py [--points 4096] [--chunk 64] [--repeats 3]

The sweep: the demo network (2-d input -> 2 x 200 LIF, recurrent -> 2-d probe), each
point a constant 2-d input held for 20 steps, the Jacobian of the last output step
w.r.t. the held input (tied) at every point; chunks of 64 points.

Rows, all in one run on this machine:

- serial loop: the sweep's own chunk code in this process, chunk after chunk
  (TensorFlow's default thread pools, i.e. all cores for one process);
- Dask, N workers x T threads: a LocalCluster of N worker processes, each with T
  TensorFlow intra/inter-op threads (``sweep(..., threads=T)``).

"start-up" is what the first call pays: for the serial loop the simulator build and
first chunk; for Dask the cluster start, every worker importing TensorFlow and
building its simulator, and a first small sweep. "steady" is points per second of a
whole sweep afterwards (median of --repeats), scheduling, transfers and assembling the
result included; "workers busy" is the share of that time the workers spent
computing chunks (the rest: waiting for tasks, or for the CPU). The benchmark
process (Dask's scheduler and client) shares the cores with the workers.
"""

import argparse
import functools
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import nengo_jacobian  # noqa: E402
from nengo_jacobian._sweep_worker import SweepSpec  # noqa: E402
from nengo_jacobian.demo import build_demo_network  # noqa: E402

N_STEPS = 20


def sweep_kwargs(chunk):
    return dict(of="out", wrt="stim", n_steps=N_STEPS, chunk=chunk, progress_bar=False)


def serial(build, points, chunk):
    """The serial loop: the runner that `sweep` uses, in this process."""
    from nengo_jacobian._sweep_worker import ChunkRunner

    spec = SweepSpec(
        token="bench",
        build_network=build,
        of="out",
        wrt="stim",
        input="stim",
        chunk=chunk,
        n_steps=N_STEPS,
        constant=True,
        output_steps=-1,
        tied=True,
        method="auto",
        threads=None,
    )
    start = time.perf_counter()
    runner = ChunkRunner(spec)
    runner.run(0, points[:chunk])
    first = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(0, len(points), chunk):
        runner.run(i // chunk, points[i : i + chunk])
    steady = time.perf_counter() - start
    runner.close()
    return first, len(points) / steady


def dask(build, points, chunk, workers, threads, repeats):
    from nengo_jacobian._sweep_worker import close_runners
    from nengo_jacobian.sweeps import _local_client

    start = time.perf_counter()
    owned = []  # the embedded cluster of sweep(client=None), kept for several calls
    client = _local_client(workers, owned)
    kwargs = dict(sweep_kwargs(chunk), client=client, threads=threads)
    # every worker builds its simulator on its first chunk
    nengo_jacobian.sweep(build, points[: 2 * workers * chunk], **kwargs)
    first = time.perf_counter() - start
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = nengo_jacobian.sweep(build, points, **kwargs)
        rates.append(len(points) / (time.perf_counter() - start))
    assert result.sizes["point"] == len(points)
    client.run(close_runners)
    for thing in reversed(owned):
        thing.close()
    return first, float(np.median(rates)), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=4096)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--neurons", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    build = functools.partial(build_demo_network, args.neurons)
    points = np.random.default_rng(0).uniform(-0.8, 0.8, size=(args.points, 2))
    print(
        f"sweep of {args.points} points, chunks of {args.chunk}: demo network "
        f"(2 x {args.neurons} LIF), constant input held {N_STEPS} steps, tied "
        f"Jacobian of the last step; {os.cpu_count()} CPU cores\n"
    )
    header = (
        f"| {'configuration':<34} | {'start-up (first call)':>21} | "
        f"{'steady points/s':>15} | {'vs 1 worker x 1 thread':>22} | "
        f"{'workers busy':>12} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c) + 0) for c in header.split("|")[1:-1]) + "|")
    rows = []

    def row(name, first, rate, busy=None):
        rows.append((name, first, rate))
        base = next((r for n, _, r in rows if n.startswith("Dask, 1 worker x 1")), None)
        ratio = f"{rate / base:.2f}x" if base else "-"
        busy = f"{100 * busy:.0f} %" if busy is not None else "-"
        print(
            f"| {name:<34} | {first:>19.1f} s | {rate:>15.0f} | {ratio:>22} | "
            f"{busy:>12} |",
            flush=True,
        )

    first, rate = serial(build, points, args.chunk)
    row("serial loop (this process)", first, rate)
    results = {}
    for workers, threads in [(1, 1), (1, 2), (2, 1)]:
        first, rate, results[workers, threads] = dask(
            build, points, args.chunk, workers, threads, args.repeats
        )
        attrs = results[workers, threads].attrs
        row(
            f"Dask, {workers} worker{'s' * (workers > 1)} x {threads} "
            f"thread{'s' * (threads > 1)}",
            first,
            rate,
            attrs["compute_seconds"] / (attrs["seconds"] * workers),
        )
    # the same bits on any number of workers (at the same thread count)
    assert results[2, 1]["jacobian"].equals(results[1, 1]["jacobian"])
    two = rows[-1][2] / rows[1][2]
    print(
        f"\n2 workers x 1 thread / 1 worker x 1 thread: {two:.2f}x "
        f"(target >= 1.6x); 2 workers' results identical bit for bit to 1 worker's"
    )


if __name__ == "__main__":
    main()
