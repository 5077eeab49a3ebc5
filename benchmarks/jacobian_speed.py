"""Jacobian speed: our engines against the reference loop and TF's tape.jacobian.

Network: 4-d input Node -> 200 LIF -> 200 LIF -> 4-d decoded probe, 20 steps,
minibatch 1. Requests: ∂probe/∂input (shape (1, 20, 4, 20, 4)) and ∂probe/∂(all
labelled weights: encoders, biases and the three connections' weights).

Prints, from one run, the first call (tracing and graph building included) and the
median of warm calls for each method, and ratios to ours. The machine is shared and
noisy: read the ratios, not the absolute times.

Run: ``python benchmarks/jacobian_speed.py [--neurons 200] [--steps 20] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import nengo  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import nengo_jacobian  # noqa: E402


def build(n_neurons: int, seed: int = 0) -> tuple:
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(np.zeros(4), label="stim")
        a = nengo.Ensemble(n_neurons, 4, neuron_type=nengo.LIF(), label="a")
        b = nengo.Ensemble(n_neurons, 4, neuron_type=nengo.LIF(), label="b")
        nengo.Connection(stim, a, synapse=None, transform=np.eye(4))
        nengo.Connection(a, b, synapse=0.005)
        nengo.Connection(b, b, synapse=0.05, transform=0.2)
        out = nengo.Probe(b, synapse=0.01, label="out")
    net.a = a
    return net, stim, out


def timed(fn, repeats: int) -> tuple[float, float]:
    """(first call, median of ``repeats`` warm calls) in seconds."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - start)
    return first, statistics.median(warm) if warm else float("nan")


def tape_jacobian(sim, x, n_steps, sources):
    """TF's own tape.jacobian in eager mode, as the TF docs suggest."""
    steps = np.full((1, 1), n_steps, np.int32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = sim.keras_model([x, steps], training=True)[0]
    return tape.jacobian(y, sources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tape-repeats", type=int, default=1)
    parser.add_argument("--skip-tape", action="store_true")
    args = parser.parse_args()

    net, stim, out = build(args.neurons)
    rng = np.random.RandomState(1)
    x = rng.uniform(-0.5, 0.5, (1, args.steps, 4)).astype(np.float32)
    rows = []
    with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
        weights = list(sim.weights)
        variables = list({id(e.variable): e.variable for e in weights}.values())
        cases = {"d out/d input": stim, "d out/d weights": weights}
        for case, wrt in cases.items():
            ours = timed(lambda wrt=wrt: sim.jacobian(out, wrt, x), args.repeats)
            info = dict(sim.jacobian_info)
            loop = timed(
                lambda wrt=wrt: sim.jacobian(out, wrt, x, method="loop"),
                max(1, args.repeats // 2),
            )
            if args.skip_tape:
                tape = (float("nan"), float("nan"))
            else:
                sources = tf.constant(x) if wrt is stim else variables
                tape = timed(
                    lambda s=sources: tape_jacobian(sim, tf.constant(x), args.steps, s),
                    args.tape_repeats,
                )
            rows.append((case, ours, loop, tape, info))
        engines = engine_table(sim, out, stim, x, args.repeats)

    print(
        f"\nJacobian speed: 4-d input -> 2 x {args.neurons} LIF -> 4-d probe, "
        f"{args.steps} steps, minibatch 1 (seconds; warm = median of "
        f"{args.repeats} calls, loop median of {max(1, args.repeats // 2)}, "
        f"tape of {args.tape_repeats})"
    )
    header = (
        f"{'request':<18}{'method':<40}{'first call':>12}{'warm':>10}"
        f"{'warm / ours':>13}{'first / ours':>14}"
    )
    print(header)
    print("-" * len(header))
    for case, ours, loop, tape, info in rows:
        name = f"nengo_jacobian ({info['engine']}, {info.get('lanes')} lanes)"
        for method, (first, warm) in (
            (name, ours),
            ("reference loop", loop),
            ("tf tape.jacobian (eager)", tape),
        ):
            print(
                f"{case:<18}{method:<40}{first:>12.3f}{warm:>10.4f}"
                f"{warm / ours[1]:>12.1f}x{first / ours[0]:>13.1f}x"
            )
    print(
        "\nTargets (issue 2): ours >= 15x faster than the reference loop for both "
        "requests (warm medians)."
    )
    print(engines)
    training_table(net, stim, out, x, args.repeats)


def engine_table(sim, out, stim, x, repeats: int) -> str:
    """Every engine on input requests (full and time-tied), with auto's choice."""
    lines = [
        "\nEngines on d out/d input (warm median / first call, seconds; ratio = warm "
        "/ best warm)",
        f"{'request':<14}{'method':<20}{'engine':<19}{'first call':>11}{'warm':>9}"
        f"{'ratio':>8}",
    ]
    for name, tied in (("full", False), ("time-tied", True)):
        timings = {}
        for method in ("reverse", "forward", "finite_difference", "auto"):
            timings[method] = timed(
                lambda m=method, t=tied: sim.jacobian(out, stim, x, tied=t, method=m),
                repeats,
            ) + (sim.jacobian_info["engine"],)
        best = min(w for m, (_, w, _) in timings.items() if m != "auto")
        for method, (first, warm, engine) in timings.items():
            lines.append(
                f"{name:<14}{method:<20}{engine:<19}{first:>11.3f}{warm:>9.4f}"
                f"{warm / best:>7.2f}x"
            )
    return "\n".join(lines)


def training_table(net, stim, out, x, repeats: int) -> None:
    """A training step with a Jacobian loss against one with a plain loss."""
    target = tf.constant(np.zeros_like(x), tf.float32)
    hidden = nengo_jacobian.Hidden(net.a)

    def plain(run):
        return tf.reduce_mean(tf.square(run[out] - target))

    def with_jacobian(run):
        return plain(run) + nengo_jacobian.losses.identity_penalty(run, out, hidden)

    rows = []
    for name, loss_fn in (
        ("plain loss (MSE)", plain),
        ("MSE + ||J - I||^2", with_jacobian),
    ):
        with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
            optimizer = tf.keras.optimizers.SGD(1e-9)
            rows.append(
                (
                    name,
                    timed(
                        lambda s=sim, f=loss_fn, o=optimizer: s.train_step(f, o, x),
                        repeats,
                    ),
                )
            )
    print(
        "\nTraining step (all weights, SGD), same network; J = d out[last] / d "
        "Hidden(a), time-tied, exact (4 lanes)"
    )
    header = f"{'loss':<22}{'first call':>12}{'warm':>10}{'warm / plain':>14}"
    print(header)
    print("-" * len(header))
    for name, (first, warm) in rows:
        print(f"{name:<22}{first:>12.3f}{warm:>10.4f}{warm / rows[0][1][1]:>13.2f}x")
    print("Target (issue 4): the Jacobian-loss step <= 5x the plain-loss step.")


if __name__ == "__main__":
    main()
