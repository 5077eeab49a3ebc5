"""The ``nengo-jacobian`` command: ``demo`` and ``run MODEL.py``, each with a report."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

EPILOG = """\
examples:
  nengo-jacobian demo
      the built-in network: d(probe)/d(input) and d(probe)/d(every weight)
  nengo-jacobian demo arm
      a spiking network's Jacobian of a robot arm's kinematics vs the analytic one
  nengo-jacobian run examples/models/two_layer.py
      every probe w.r.t. every input Node of the model file
  nengo-jacobian run MODEL.py --probe out --wrt stim --wrt a->b.weights --steps 50
  nengo-jacobian run examples/models/arm_kinematics.py --points q.npy --workers 2
      a sweep: the Jacobian at every point (row) of q.npy, on 2 Dask workers

a model file is a Python file that builds a nengo.Network at module level (named
`model`, `net` or `network`, or the only one). It may define `n_steps` and `data`
({Node label: array (items, steps, size)}). Objects are addressed by label; an
unknown name gets an error listing the valid ones.

exit codes: 0 success; 1 the model, data or request is wrong (one-line message on
stderr); 2 the command line is wrong (usage message).

Derivatives are exact derivatives of the rate-mode network NengoDL trains (spiking
neurons replaced by their rate model), computed with TensorFlow on the CPU.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nengo-jacobian",
        description=(
            "Exact, labelled Jacobians of Nengo networks (via NengoDL): how each "
            "probed output moves with each input, at each lag, and with each weight."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run a built-in example and write its report",
        description="Run a built-in example network and write a report.",
    )
    demo.add_argument(
        "which",
        nargs="?",
        default="network",
        choices=["network", "arm"],
        help=(
            "which example: network (default; a small spiking network) or arm (a "
            "spiking network's Jacobian of an arm's kinematics vs the analytic one)"
        ),
    )
    demo.add_argument("--out", default="jacobian-report", help="report folder")
    demo.add_argument("--steps", type=int, default=30, help="simulation steps")
    demo.add_argument("--neurons", type=int, default=100, help="neurons per ensemble")

    run = sub.add_parser(
        "run",
        help="Jacobians of a model file's probes, with a report",
        description=(
            "Load MODEL.py, compute d(probe)/d(wrt) for the named probes and inputs "
            "or weights, and write a report: summary.txt (norms, singular values, "
            "largest single-weight sensitivities), heatmaps and bar charts (PNG), "
            "jacobians.nc (NetCDF, for xarray) and jacobians.npz."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("model", metavar="MODEL.py", help="the model file")
    run.add_argument(
        "--probe",
        action="append",
        metavar="NAME",
        help="probe label (repeatable; default: every probe)",
    )
    run.add_argument(
        "--wrt",
        action="append",
        metavar="NAME",
        help=(
            "input Node label, weight name (e.g. 'a->b.weights', 'a.scaled_encoders', "
            "'a.neurons.bias'), 'inputs' or 'weights' (repeatable; default: every "
            "input Node)"
        ),
    )
    run.add_argument(
        "--steps",
        type=int,
        help=(
            "simulation steps (default: the file's n_steps, else the data's length, "
            "else 50); longer data is cut to this length"
        ),
    )
    run.add_argument(
        "--data", metavar="FILE.npz", help="input data, one array per Node label"
    )
    run.add_argument("--out", default="jacobian-report", help="report folder")
    run.add_argument(
        "--method",
        default="auto",
        choices=[
            "auto",
            "reverse",
            "reverse_xla",
            "forward",
            "finite_difference",
            "loop",
        ],
        help="engine (default: auto)",
    )
    run.add_argument(
        "--quiet", action="store_true", help="no progress bars, only errors and paths"
    )
    sweep = run.add_argument_group(
        "sweeps",
        "With --points, a sweep: the Jacobian of one probe w.r.t. one input Node at "
        "every point, in chunks on Dask workers (an embedded local cluster by "
        "default); writes sweep.nc (jacobian, norm, singular values, condition, "
        "manipulability per point), sweep.txt, chunk files in OUT/sweep/ (running "
        "the same command again computes only missing chunks) and, for 2-d points, "
        "sweep_manipulability.png.",
    )
    sweep.add_argument(
        "--points",
        metavar="FILE",
        help=(
            "points: .npy, .npz or .csv, shape (points, dims) (a constant input held "
            "for --steps steps, default the file's n_steps or 1) or (points, steps, "
            "dims) (an input sequence each); replaces the model's data"
        ),
    )
    where = sweep.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the local cluster (default: CPU count; 0: serial)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running Dask cluster's scheduler, e.g. tcp://10.0.0.5:8786",
    )
    sweep.add_argument(
        "--chunk", type=int, default=64, help="points per task (default: 64)"
    )
    sweep.add_argument(
        "--input",
        metavar="NAME",
        help="input Node that receives the points (default: the --wrt Node)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message="No GPU support detected")
    try:
        if args.command == "run":
            return _run(args)
        if args.which == "arm":
            from nengo_jacobian.demo import arm_demo

            paths = arm_demo(args.out)
            print("\n".join(f"wrote {p}" for p in paths))
            return 0
        return _demo(args)
    except Exception as error:  # one line, no traceback, non-zero exit
        print(
            f"nengo-jacobian: error: {type(error).__name__}: {error}", file=sys.stderr
        )
        return 1


def _run(args) -> int:
    import numpy as np

    import nengo_jacobian
    from nengo_jacobian import model_file

    if args.points:
        from nengo_jacobian._sweep_cli import run_sweep

        return run_sweep(args)
    if args.workers is not None or args.scheduler or args.input:
        raise model_file.ModelFileError(
            "--workers, --scheduler and --input are for sweeps: add --points FILE."
        )
    model = model_file.load_model_file(args.model)
    probes = model_file.find_probes(model.network, args.probe)
    data = model_file.load_data(args.data, model)
    n_steps = args.steps or model.n_steps
    if n_steps is None and not data:
        n_steps = 50
    if n_steps is not None and n_steps < 1:
        raise model_file.ModelFileError(f"--steps must be positive, got {n_steps}")
    if args.steps:  # an explicit --steps shortens longer data
        data = {
            n: x[:, : args.steps] if np.ndim(x) == 3 else x for n, x in data.items()
        }
    # NengoDL's own bars print even into files; show them only on a terminal
    show = not args.quiet
    bars = show and sys.stdout.isatty()
    start = time.perf_counter()
    with nengo_jacobian.Simulator(model.network, progress_bar=bars) as sim:
        wrt = model_file.find_wrt(sim, args.wrt)
        result = sim.labelled_jacobian(
            probes, wrt, data or None, n_steps, method=args.method
        )
    seconds = time.perf_counter() - start
    os.makedirs(args.out, exist_ok=True)
    summary = result.summary()
    with open(os.path.join(args.out, "summary.txt"), "w", encoding="utf-8") as f:
        f.write(f"{args.model}: {result!r}\n\n{summary}\n")
    paths = [os.path.join(args.out, "summary.txt")]
    paths += result.save_plots(args.out)
    for name in ("jacobians.nc", "jacobians.npz"):
        result.save(os.path.join(args.out, name))
        paths.append(os.path.join(args.out, name))
    if show:
        print(
            f"{args.model}: {len(result)} Jacobian block(s), "
            f"{result.attrs['n_steps']} steps, engine {result.attrs['engine']}, "
            f"{seconds:.1f} s (build included)\n"
        )
        print(summary + "\n")
    print("\n".join(f"wrote {p}" for p in paths))
    return 0


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
