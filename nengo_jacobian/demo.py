"""The built-in example network of the main job."""

from __future__ import annotations

import nengo
import numpy as np


def build_demo_network(n_neurons: int = 100, seed: int = 0) -> nengo.Network:
    """A small spiking network with every kind of weight.

    ``stim`` (2-d input Node) -> ``a`` (LIF) -> ``b`` (LIF, with a recurrent
    connection) -> probe ``out`` (2-d, decoded, filtered). Its attributes ``stim``,
    ``a``, ``b`` and ``out`` give access to the objects.

    Parameters
    ----------
    n_neurons : int
        Neurons per ensemble.
    seed : int
        Network seed.

    Returns
    -------
    nengo.Network
    """
    with nengo.Network(seed=seed, label="demo") as net:
        net.stim = nengo.Node(np.zeros(2), label="stim")
        net.a = nengo.Ensemble(n_neurons, 2, neuron_type=nengo.LIF(), label="a")
        net.b = nengo.Ensemble(n_neurons, 2, neuron_type=nengo.LIF(), label="b")
        nengo.Connection(
            net.stim,
            net.a,
            transform=[[1.0, 0.0], [0.5, 1.0]],
            synapse=None,
            label="stim->a",
        )
        nengo.Connection(net.a, net.b, synapse=0.005, label="a->b")
        nengo.Connection(
            net.b,
            net.b,
            transform=[[0.0, -0.5], [0.5, 0.0]],
            synapse=0.05,
            label="b->b",
        )
        net.out = nengo.Probe(net.b, synapse=0.01, label="out")
    return net


def demo_input(n_steps: int, dt: float = 0.001) -> np.ndarray:
    """``(1, n_steps, 2)``: a slow rotation the demo network is driven with."""
    t = np.arange(1, n_steps + 1) * dt
    return (
        0.6 * np.stack([np.sin(2 * np.pi * 5 * t), np.cos(2 * np.pi * 5 * t)], -1)[None]
    )


def arm_demo(out: str, n_grid: int = 41, n_neurons: int = 1000) -> list[str]:
    """The ``demo arm`` job: a spiking network's Jacobian of an arm's kinematics.

    Builds `~nengo_jacobian.arms.neural.NeuralKinematics` for the REACH two-link arm,
    computes the network's Jacobian Ĵ(q) = ∂(hand)/∂q on an ``n_grid`` × ``n_grid``
    grid of the joint box, compares it with the analytic J, prints a summary and
    writes ``arm_jacobian.png`` (relative error and manipulability maps) and
    ``arm_jacobians.nc`` (the labelled Jacobians, one minibatch item per grid point).

    Returns
    -------
    list of str
        The files written.
    """
    import os

    from nengo_jacobian import arms
    from nengo_jacobian.arms.neural import NeuralKinematics
    from nengo_jacobian.plots import _pyplot

    arm = arms.TwoLinkArm()
    kin = NeuralKinematics(arm, n_neurons=n_neurons)
    box = kin.box
    lo, hi = box.from_unit([-1, -1]), box.from_unit([1, 1])
    q1, q2 = np.meshgrid(
        np.linspace(lo[0], hi[0], n_grid), np.linspace(lo[1], hi[1], n_grid)
    )
    q = np.stack([q1, q2], axis=-1).reshape(-1, 2)
    batch = n_grid  # one grid row per minibatch
    with kin.simulator(minibatch_size=batch) as sim:
        result = sim.labelled_jacobian(
            kin.hand_probe, kin.joints, {kin.joints: box.to_unit(q)[:, None]}, 1
        )
        x_hat = kin.fk(sim, q)
    J_hat = result["hand", "joints"][:, 0, :, 0, :] / box._arrays()[1]
    J = arm.jacobian(q)
    error = arms.jacobian_relative_error(J_hat, J)
    fk_error = np.linalg.norm(x_hat - arm.fk(q), axis=-1)

    def manipulability(jac):
        return np.sqrt(np.abs(np.linalg.det(jac @ np.swapaxes(jac, -1, -2))))

    print(
        f"nengo-jacobian demo arm: {n_neurons} LIF neurons decode the hand position "
        f"of a two-link arm (1.5 m, 1.3 m) from its joint angles.\n"
        f"Network Jacobian ∂hand/∂q (rate mode, exact) on a {n_grid}x{n_grid} grid of "
        f"q1 in [{lo[0]:.2f}, {hi[0]:.2f}], q2 in [{lo[1]:.2f}, {hi[1]:.2f}] rad:\n"
        f"  ‖Ĵ − J‖/‖J‖: median {100 * np.median(error):.1f} %, p95 "
        f"{100 * np.percentile(error, 95):.1f} %, max {100 * error.max():.1f} %\n"
        f"  hand position error: median {100 * np.median(fk_error):.2f} cm\n"
        f"  engine {sim.jacobian_info['engine']}, "
        f"{sim.jacobian_info['seconds']:.2f} s for {len(q)} Jacobians"
    )
    os.makedirs(out, exist_ok=True)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), constrained_layout=True)
    extent = (lo[0], hi[0], lo[1], hi[1])
    panels = [
        (100 * error, "‖Ĵ − J‖_F / ‖J‖_F (%)", "viridis"),
        (manipulability(J_hat), "√det(Ĵ Ĵᵀ), network (m²/rad)", "magma"),
        (manipulability(J), "√det(J Jᵀ), analytic (m²/rad)", "magma"),
    ]
    vmax = max(panels[1][0].max(), panels[2][0].max())
    for ax, (values, title, cmap) in zip(axes, panels):
        image = ax.imshow(
            values.reshape(n_grid, n_grid),
            origin="lower",
            extent=extent,
            aspect="auto",
            cmap=cmap,
            vmin=0,
            vmax=None if cmap == "viridis" else vmax,
        )
        fig.colorbar(image, ax=ax)
        ax.set(
            title=title, xlabel="shoulder angle q1 (rad)", ylabel="elbow angle q2 (rad)"
        )
    fig.suptitle(
        "Jacobian of Probe 'hand' w.r.t. Node 'joints' (1000 LIF, rate mode) vs the "
        "arm's analytic Jacobian"
    )
    png = os.path.join(out, "arm_jacobian.png")
    fig.savefig(png, dpi=100)
    plt.close(fig)
    nc = os.path.join(out, "arm_jacobians.nc")
    result.save(nc)
    return [png, nc]
