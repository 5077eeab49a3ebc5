"""Sobolev training: a Jacobian in the loss makes a learned arm model's Jacobian better.

The spiking kinematics network of ``spiking_fk_jacobian_osc.py`` (1000 LIF neurons,
NEF decoders for the arm's hand position x(q)) is fine-tuned in a custom tf.keras
loop, twice from the same start with the same budget:

  position only:  loss = ‖x̂(q) − x(q)‖²
  Sobolev:        loss = ‖x̂(q) − x(q)‖² + λ ‖Ĵ(q) − J(q)‖²_F,  λ = 1 rad²

where Ĵ(q) = ∂x̂/∂q is the network's own Jacobian, computed inside the loss by
``run.jacobian`` and differentiated again w.r.t. the decoders (second order, exact).
Per-batch targets reach the loss through two unconnected input Nodes (``run.input``).

Run: ``python examples/sobolev_kinematics.py [--fast] [--out DIR]``. It prints FK and
Jacobian errors on 2000 held-out joint angles and the path deviation of the 16 REACH
reaches under OSC with each network's Ĵ, and saves ``sobolev_training.png`` (training
curves, error distributions, arm paths).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's graph-optimizer chatter

import nengo  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from nengo_jacobian import arms  # noqa: E402
from nengo_jacobian.arms.neural import NeuralKinematics  # noqa: E402
from nengo_jacobian.progress import track  # noqa: E402

LAMBDA = 1.0  # rad²: weight of the Jacobian term against the position term
LEARNING_RATE = 1e-6  # NEF decoders are ~1e-5 each: larger Adam steps wreck them
BATCH = 500


def errors(kin: NeuralKinematics, sim, q: np.ndarray) -> dict:
    """FK error (m) and relative Jacobian error of the network on joint angles q."""
    fk = np.linalg.norm(kin.fk(sim, q) - kin.arm.fk(q), axis=-1)
    jac = arms.jacobian_relative_error(kin.jacobian(sim, q), kin.arm.jacobian(q))
    return {"fk": fk, "jacobian": jac}


def train(sobolev: bool, q_train, q_test, epochs: int, seed: int) -> dict:
    """Fine-tune a fresh network; return its errors before and after, and the curve."""
    arm = arms.TwoLinkArm()
    kin = NeuralKinematics(arm, n_neurons=1000, seed=seed, lif_smoothing=0.02)
    with kin.network:
        # per-batch targets: unconnected input Nodes, read in the loss
        x_target = nengo.Node(np.zeros(2), label="x target")
        j_target = nengo.Node(np.zeros(4), label="J target")
    half_width = kin.box._arrays()[1]  # the network sees q scaled into [-1, 1]

    def loss_fn(run):
        x_hat = run[kin.hand_probe][:, 0]  # (batch, 2), rate mode
        loss = tf.reduce_mean(
            tf.reduce_sum(tf.square(x_hat - run.input(x_target)[:, 0]), axis=-1)
        )
        if sobolev:
            # ∂x̂/∂(scaled q) at the single step, back to m/rad
            J_hat = run.jacobian(kin.hand_probe, kin.joints)[:, 0, :, 0, :]
            J_hat = tf.reshape(J_hat / half_width.astype(np.float32), (-1, 4))
            loss += LAMBDA * tf.reduce_mean(
                tf.reduce_sum(tf.square(J_hat - run.input(j_target)[:, 0]), axis=-1)
            )
        return loss

    s = kin.box.to_unit(q_train)
    x, J = arm.fk(q_train), arm.jacobian(q_train).reshape(-1, 4)
    rng = np.random.default_rng(seed)
    curve = []
    with kin.simulator(minibatch_size=BATCH) as sim:
        before = errors(kin, sim, q_test)
        optimizer = tf.keras.optimizers.Adam(LEARNING_RATE)
        name = "Sobolev" if sobolev else "position only"
        for _ in track(range(epochs), f"Training ({name})"):
            losses = []
            for batch in np.split(rng.permutation(len(s)), len(s) // BATCH):
                data = {
                    kin.joints: s[batch, None],
                    x_target: x[batch, None],
                    j_target: J[batch, None],
                }
                losses.append(
                    sim.train_step(loss_fn, optimizer, data, wrt=kin.decoders)
                )
            after = errors(kin, sim, q_test)
            curve.append(
                (np.mean(losses), np.median(after["fk"]), np.median(after["jacobian"]))
            )
        trained = sim.weights[kin.decoders].read()
    return {
        "before": before,
        "after": after,
        "curve": np.array(curve),
        "reaches": reach_with(kin, trained),
    }


def reach_with(kin: NeuralKinematics, decoders: np.ndarray) -> arms.ReachResult:
    """The 16 REACH reaches under OSC with the network's Ĵ (100 Hz) and the true x."""
    arm = kin.arm
    ctrl = arms.OperationalSpaceController(arm, kp=50)
    with kin.simulator(minibatch_size=1) as sim:
        sim.weights[kin.decoders].assign(decoders)  # the trained decoders
        held = {}

        def controller(q, dq, target, t):
            step = round(t / 1e-3)
            if step % 10 == 0 or "J" not in held:
                held["J"] = kin.jacobian(sim, q)
            return ctrl(q, dq, target, J=held["J"])

        return arms.run_reaches(
            arm,
            controller,
            arms.out_and_back(arms.centre_out_targets(8)),
            q0=arm.inverse_kinematics(arms.REACH_CENTRE),
        )


def main(fast: bool = False, seed: int = 0, out: str | None = "robot-report") -> dict:
    """Run the example; return its metrics (FK errors in cm, Jacobian errors as
    fractions).

    Parameters
    ----------
    fast : bool
        4000 samples × 10 epochs (default 8000 × 30).
    seed : int
        Network and data seed.
    out : str or None
        Folder for the figure (None: no figure).
    """
    start = time.perf_counter()
    n_train, epochs = (4000, 10) if fast else (8000, 30)
    box = arms.REACH_JOINT_BOX
    q_train = box.sample(n_train, np.random.default_rng(seed + 1))
    q_test = box.sample(2000, np.random.default_rng(seed + 100))
    runs = {
        "position only": train(False, q_train, q_test, epochs, seed),
        "Sobolev": train(True, q_train, q_test, epochs, seed),
    }
    metrics = {
        "nef_fk_median_cm": 100 * float(np.median(runs["Sobolev"]["before"]["fk"])),
        "nef_jacobian_median": float(np.median(runs["Sobolev"]["before"]["jacobian"])),
    }
    for name, run in runs.items():
        key = name.replace(" ", "_")
        metrics[f"{key}_fk_median_cm"] = 100 * float(np.median(run["after"]["fk"]))
        metrics[f"{key}_jacobian_median"] = float(np.median(run["after"]["jacobian"]))
        metrics[f"{key}_jacobian_p95"] = float(
            np.percentile(run["after"]["jacobian"], 95)
        )
        reaches = run["reaches"].summary()
        metrics[f"{key}_deviation_mean_cm"] = 100 * reaches["max_deviation_mean"]
        metrics[f"{key}_final_error_max_cm"] = 100 * reaches["final_error_max"]
    metrics["jacobian_ratio"] = (
        metrics["Sobolev_jacobian_median"] / metrics["position_only_jacobian_median"]
    )
    metrics["seconds"] = time.perf_counter() - start

    print(
        f"\n{n_train} samples x {epochs} epochs, batch {BATCH}, Adam "
        f"{LEARNING_RATE:g}, decoders only; errors on 2000 held-out q"
    )
    print(
        f"{'model':<16}{'FK median':>12}{'J median':>11}{'J p95':>9}"
        f"{'OSC path dev':>14}{'final max':>11}"
    )
    print(
        f"{'NEF (start)':<16}{metrics['nef_fk_median_cm']:>9.3f} cm"
        f"{100 * metrics['nef_jacobian_median']:>9.2f} %"
        f"{100 * np.percentile(runs['Sobolev']['before']['jacobian'], 95):>7.2f} %"
    )
    for name in runs:
        key = name.replace(" ", "_")
        print(
            f"{name:<16}{metrics[f'{key}_fk_median_cm']:>9.3f} cm"
            f"{100 * metrics[f'{key}_jacobian_median']:>9.2f} %"
            f"{100 * metrics[f'{key}_jacobian_p95']:>7.2f} %"
            f"{metrics[f'{key}_deviation_mean_cm']:>11.2f} cm"
            f"{metrics[f'{key}_final_error_max_cm']:>8.2f} cm"
        )
    print(
        f"Jacobian error, Sobolev / position only: {metrics['jacobian_ratio']:.2f} "
        f"({metrics['seconds']:.1f} s in all)"
    )
    if out is not None:
        print(f"wrote {plot(runs, out)}")
    return metrics


def plot(runs: dict, out: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    fig, axes = plt.subplots(1, 5, figsize=(23, 4.4), constrained_layout=True)
    for name, run in runs.items():
        epochs = np.arange(1, len(run["curve"]) + 1)
        axes[0].plot(epochs, 100 * run["curve"][:, 1], "o-", label=name)
        axes[1].plot(epochs, 100 * run["curve"][:, 2], "o-", label=name)
        errors = np.sort(run["after"]["jacobian"])
        axes[2].plot(100 * errors, np.linspace(0, 1, errors.size), label=name)
    start = np.sort(runs["Sobolev"]["before"]["jacobian"])
    axes[2].plot(100 * start, np.linspace(0, 1, start.size), "k:", label="NEF start")
    axes[0].set(xlabel="epoch", ylabel="FK error, median (cm)", title="hand position")
    axes[1].set(
        xlabel="epoch", ylabel="‖Ĵ − J‖ / ‖J‖, median (%)", title="network Jacobian"
    )
    axes[2].set(
        xlabel="‖Ĵ − J‖ / ‖J‖ (%)",
        ylabel="fraction of held-out q",
        title="Jacobian error distribution (after training)",
    )
    for ax in axes[:3]:
        ax.legend()
    for ax, (name, run) in zip(axes[3:], runs.items()):
        result = run["reaches"]
        for path in result.hand:
            ax.plot(path[:, 0], path[:, 1], lw=1)
        ax.plot(*result.targets.T, "k+", ms=10)
        ax.set_aspect("equal")
        ax.set(
            xlabel="hand x (m)",
            ylabel="hand y (m)",
            title=f"OSC with the {name} network's Ĵ\nmean path deviation "
            f"{100 * result.summary()['max_deviation_mean']:.2f} cm",
        )
    fig.suptitle("Fine-tuning a spiking kinematics network with and without ∂x̂/∂q")
    path = os.path.join(out, "sobolev_training.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="4000 samples x 10 epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="robot-report")
    args = parser.parse_args()
    main(fast=args.fast, seed=args.seed, out=args.out)
