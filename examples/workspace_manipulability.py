"""Workspace manipulability map of a spiking network that has learned an arm's
kinematics, against the analytic arm: one `nengo_jacobian.sweep` over a joint grid.

Run: ``python examples/workspace_manipulability.py [--fast] [--workers N] [--out
DIR]``. A 1000-neuron LIF ensemble decodes the hand position of the REACH two-link
arm from its (scaled) joint angles (`NeuralKinematics`). The sweep computes the
network's Jacobian Ĵ(q) = ∂hand/∂q at every point of a 101 × 101 grid of the joint
box (10,201 points, in chunks of 256 on a local Dask cluster of ``--workers``
processes) with its manipulability √det(Ĵ Ĵᵀ), and compares it with the arm's
analytic √det(J Jᵀ) = l1 l2 |sin q2|. It writes ``workspace_manipulability.png``:
the two maps over joint space, their relative difference, and the network's map over
the hand's workspace. ``--fast``: a 25 × 25 grid, 500 neurons, in this process.
"""

import argparse
import os
import time

import numpy as np

import nengo_jacobian
from nengo_jacobian.arms import TwoLinkArm
from nengo_jacobian.arms.neural import NeuralKinematics


def build_network(n_neurons=1000):
    """The sweep's factory: each Dask worker calls it to build its own network."""
    return NeuralKinematics(TwoLinkArm(), n_neurons=n_neurons).network


def main(fast=False, workers=2, out="sweep-report"):
    """Run the sweep, draw the maps; return the metrics."""
    import functools

    n_grid, n_neurons = (25, 500) if fast else (101, 1000)
    arm = TwoLinkArm()
    box = NeuralKinematics(arm, n_neurons=10).box
    unit = np.linspace(-1, 1, n_grid)
    s1, s2 = np.meshgrid(unit, unit)
    points = np.stack([s1, s2], axis=-1).reshape(-1, 2)  # network input, in [-1, 1]
    q = box.from_unit(points)  # joint angles, rad
    start = time.perf_counter()
    result = nengo_jacobian.sweep(
        functools.partial(build_network, n_neurons),
        points,
        of="hand",
        wrt="joints",
        chunk=256,
        client="serial" if fast else None,
        workers=None if fast else workers,
    )
    seconds = time.perf_counter() - start
    # the network sees s = (q - centre) / half: ∂hand/∂q = ∂hand/∂s / half
    half = box.from_unit([1, 1]) - box.from_unit([0, 0])
    network = result["manipulability"].values / np.prod(half)
    J = arm.jacobian(q)
    analytic = np.sqrt(np.linalg.det(J @ np.swapaxes(J, 1, 2)))
    relative = np.abs(network - analytic) / analytic
    metrics = {
        "points": len(points),
        "where": result.attrs["where"],
        "seconds": seconds,
        "points_per_second": len(points) / seconds,
        "manipulability_error_median": float(np.median(relative)),
        "manipulability_error_p95": float(np.percentile(relative, 95)),
        "correlation": float(np.corrcoef(network, analytic)[0, 1]),
    }
    print(
        f"Manipulability √det(Ĵ Ĵᵀ) of a {n_neurons}-neuron LIF network's Jacobian "
        f"at {len(points)} joint configurations ({result.attrs['where']}, "
        f"{seconds:.1f} s including start-up):\n"
        f"  relative difference to the analytic arm: median "
        f"{100 * metrics['manipulability_error_median']:.1f} %, p95 "
        f"{100 * metrics['manipulability_error_p95']:.1f} %; correlation "
        f"{metrics['correlation']:.4f}"
    )
    if out:
        os.makedirs(out, exist_ok=True)
        metrics["figure"] = figure(q, network, analytic, relative, arm, n_grid, out)
        print(f"wrote {metrics['figure']}")
    return metrics


def figure(q, network, analytic, relative, arm, n_grid, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extent = (q[:, 0].min(), q[:, 0].max(), q[:, 1].min(), q[:, 1].max())
    fig, axes = plt.subplots(2, 2, figsize=(11, 9), constrained_layout=True)
    vmax = max(network.max(), analytic.max())
    panels = [
        (network, "network: √det(Ĵ Ĵᵀ) (m²/rad)", "magma", (0, vmax)),
        (analytic, "analytic arm: √det(J Jᵀ) = l₁l₂|sin q₂|", "magma", (0, vmax)),
        (100 * relative, "relative difference (%)", "viridis", (0, None)),
    ]
    for ax, (values, title, cmap, (lo, hi)) in zip(axes.flat, panels):
        image = ax.imshow(
            values.reshape(n_grid, n_grid),
            origin="lower",
            extent=extent,
            aspect="auto",
            cmap=cmap,
            vmin=lo,
            vmax=hi,
        )
        fig.colorbar(image, ax=ax)
        ax.set(title=title, xlabel="shoulder q₁ (rad)", ylabel="elbow q₂ (rad)")
    hand = arm.fk(q)
    ax = axes[1, 1]
    dots = ax.scatter(
        hand[:, 0], hand[:, 1], c=network, s=4, cmap="magma", vmin=0, vmax=vmax
    )
    fig.colorbar(dots, ax=ax)
    ax.set(
        title="network's manipulability over the hand workspace",
        xlabel="hand x (m)",
        ylabel="hand y (m)",
        aspect="equal",
    )
    fig.suptitle(
        f"Manipulability of a spiking network's kinematic Jacobian vs the analytic "
        f"arm ({len(q)} points, one nengo_jacobian.sweep)"
    )
    path = os.path.join(out, "workspace_manipulability.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="25 x 25 grid, serial")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers")
    parser.add_argument("--out", default="sweep-report", help="figure folder")
    args = parser.parse_args()
    main(fast=args.fast, workers=args.workers, out=args.out)
