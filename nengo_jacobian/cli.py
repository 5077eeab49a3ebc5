"""The ``nengo-jacobian`` command: the main job on a built-in network."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nengo-jacobian",
        description=(
            "Exact Jacobians of NengoDL networks. `demo` builds a small spiking "
            "network, computes d(probe)/d(input) and d(probe)/d(every weight) of its "
            "rate-mode version, prints a labelled summary and writes a report."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the built-in example network")
    demo.add_argument("--out", default="jacobian-report", help="report folder")
    demo.add_argument("--steps", type=int, default=30, help="simulation steps")
    demo.add_argument("--neurons", type=int, default=100, help="neurons per ensemble")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message="No GPU support detected")
    try:
        return _demo(args)
    except Exception as error:  # one line, no traceback, non-zero exit
        print(
            f"nengo-jacobian: error: {type(error).__name__}: {error}", file=sys.stderr
        )
        return 1


def _demo(args) -> int:
    import numpy as np

    import nengo_jacobian
    from nengo_jacobian.demo import build_demo_network, demo_input
    from nengo_jacobian.plots import input_jacobian_heatmap, weight_sensitivity_bars

    net = build_demo_network(args.neurons)
    x = demo_input(args.steps)
    os.makedirs(args.out, exist_ok=True)
    with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
        start = time.perf_counter()
        j_in = sim.jacobian(net.out, net.stim, x)
        info_in = dict(sim.jacobian_info, total=time.perf_counter() - start)
        start = time.perf_counter()
        weights = list(sim.weights)
        j_w = sim.jacobian(net.out, weights, x)
        info_w = dict(sim.jacobian_info, total=time.perf_counter() - start)
        dt = sim.dt

    print(
        f"nengo-jacobian demo: Jacobians of the rate-mode network (LIF -> LIFRate)\n"
        f"  stim (2-d input Node) -> a ({args.neurons} LIF) -> b ({args.neurons} LIF, "
        f"recurrent) -> Probe out (2-d), {args.steps} steps of {dt * 1e3:g} ms\n"
    )
    print(
        f"d out / d stim: shape {j_in.shape} = (minibatch, out step, out dim, "
        f"in step, in dim)\n  engine {info_in['engine']}, {info_in['lanes']} lanes, "
        f"{info_in['total']:.2f} s (first call, graph build included)"
    )
    gain = j_in[0, -1].sum(axis=1)  # (out dim, in dim): Σ over input steps
    print("  last output step, summed over input steps (step-response gain):")
    print("            " + "".join(f"{f'stim[{j}]':>10}" for j in range(gain.shape[1])))
    for i, row in enumerate(gain):
        print(f"    out[{i}]  " + "".join(f"{v:>10.4f}" for v in row))
    lags = np.arange(args.steps)
    profile = np.array(
        [np.abs(np.diagonal(j_in[0], offset=-k, axis1=0, axis2=2)).sum() for k in lags]
    )
    future = sum(np.abs(j_in[0, t, :, t + 1 :]).sum() for t in range(args.steps))
    print(
        f"  strongest lag: {lags[np.argmax(profile)] * dt * 1e3:g} ms; "
        f"sum |d out(t)/d stim(s)| over s > t: {future:g} (causal)\n"
    )
    norms = {e.name: float(np.linalg.norm(j_w[e])) for e in weights}
    print(
        f"d out / d weights: {len(weights)} labelled weights, engine "
        f"{info_w['engine']}, {info_w['total']:.2f} s (first call)"
    )
    print(f"  {'weight':<24}{'shape':<12}{'|J|_F':>11}{'max |J|':>11}  variable[rows]")
    for e in sorted(weights, key=lambda e: -norms[e.name]):
        rows = e.row_slice or e.rows.tolist()
        where = (
            f"{e.variable.name.split('/')[-1]}[{rows.start}:{rows.stop}]"
            if (isinstance(rows, slice))
            else f"{e.variable.name}{rows}"
        )
        print(
            f"  {e.name:<24}{str(e.shape):<12}{norms[e.name]:>11.4g}"
            f"{float(np.max(np.abs(j_w[e]))):>11.4g}  {where}"
        )
    print("  (scaled_encoders = encoders * gain / radius, as NengoDL stores them)\n")

    heatmap = os.path.join(args.out, "input_jacobian.png")
    bars = os.path.join(args.out, "weight_sensitivity.png")
    arrays = os.path.join(args.out, "jacobians.npz")
    input_jacobian_heatmap(j_in, heatmap, probe_name="out", node_name="stim", dt=dt)
    weight_sensitivity_bars(norms, bars, probe_name="out")
    np.savez(
        arrays,
        **{"d out / d stim": j_in},
        **{f"d out / d {e.name}": j_w[e] for e in weights},
    )
    print(f"wrote {heatmap}\nwrote {bars}\nwrote {arrays}")
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
