"""Pictures of Jacobians (matplotlib, no display needed)."""

from __future__ import annotations

import os
import sys

import numpy as np


def _pyplot():
    """Return pyplot, on a file-only backend unless one was chosen already."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def input_jacobian_heatmap(
    jacobian: np.ndarray,
    path: str | os.PathLike,
    *,
    probe_name: str,
    node_name: str,
    dt: float = 0.001,
    item: int = 0,
) -> None:
    """Save ∂probe/∂input of one item as a time × time heatmap, one panel per dim pair.

    Parameters
    ----------
    jacobian : numpy.ndarray
        ``(minibatch, n_steps, probe_dims, n_steps, node_dims)`` from
        `nengo_jacobian.Simulator.jacobian`.
    path : str or os.PathLike
        PNG file to write.
    probe_name, node_name : str
        Names for the title and axes.
    dt : float
        Simulator time step, for axes in seconds.
    item : int
        Which minibatch item to show.
    """
    plt = _pyplot()
    fig = input_jacobian_figure(
        jacobian, probe_name=probe_name, node_name=node_name, dt=dt, item=item
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def input_jacobian_figure(
    jacobian: np.ndarray,
    *,
    probe_name: str,
    node_name: str,
    dt: float = 0.001,
    item: int = 0,
):
    """∂probe/∂input of one item as a time × time heatmap figure.

    Parameters are those of `input_jacobian_heatmap` without ``path``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()

    jac = np.asarray(jacobian)[item]  # (t_out, i, t_in, j)
    n_out, dims_out, n_in, dims_in = jac.shape
    limit = float(np.max(np.abs(jac))) or 1.0
    fig, axes = plt.subplots(
        dims_out,
        dims_in,
        figsize=(max(3.2 * dims_in + 1.2, 6.0), 3.0 * dims_out + 0.8),
        squeeze=False,
        sharex=True,
        sharey=True,
        constrained_layout=True,
    )
    extent = (0.5 * dt, (n_in + 0.5) * dt, (n_out + 0.5) * dt, 0.5 * dt)
    for i in range(dims_out):
        for j in range(dims_in):
            ax = axes[i, j]
            image = ax.imshow(
                jac[:, i, :, j],
                cmap="RdBu_r",
                vmin=-limit,
                vmax=limit,
                extent=extent,
                aspect="auto",
                interpolation="nearest",
            )
            ax.set_title(f"∂ {probe_name}[{i}] / ∂ {node_name}[{j}]", fontsize=9)
            if i == dims_out - 1:
                ax.set_xlabel(f"input time of {node_name} (s)")
            if j == 0:
                ax.set_ylabel(f"output time of {probe_name} (s)")
    fig.colorbar(image, ax=axes, shrink=0.8, label="∂ output / ∂ input")
    fig.suptitle(
        f"Jacobian of Probe {probe_name!r} w.r.t. {node_name!r} "
        f"(rate mode, item {item})"
    )
    fig.set_label(f"d_{probe_name}_d_{node_name}")
    return fig


def weight_sensitivity_bars(
    norms: dict, path: str | os.PathLike, *, probe_name: str
) -> None:
    """Save a bar chart of ‖∂probe/∂W‖_F per labelled weight.

    Parameters
    ----------
    norms : dict
        ``{weight name: Frobenius norm}``.
    path : str or os.PathLike
        PNG file to write.
    probe_name : str
        Name of the probe, for the title.
    """
    plt = _pyplot()
    fig = weight_sensitivity_figure(norms, probe_name=probe_name)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def weight_sensitivity_figure(norms: dict, *, probe_name: str):
    """Bar chart of ‖∂probe/∂W‖_F per labelled weight.

    Parameters are those of `weight_sensitivity_bars` without ``path``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    names = sorted(norms, key=norms.get)
    fig, ax = plt.subplots(
        figsize=(7, 0.45 * len(names) + 1.4), constrained_layout=True
    )
    ax.barh(names, [norms[n] for n in names], color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel(f"‖∂ {probe_name} / ∂ weight‖ (Frobenius, all steps)")
    ax.set_title(f"Sensitivity of Probe {probe_name!r} to each labelled weight")
    fig.set_label(f"weight_sensitivity_{probe_name}")
    return fig
