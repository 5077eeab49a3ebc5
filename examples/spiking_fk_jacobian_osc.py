"""A spiking network's Jacobian drives operational-space control of an arm.

A 1000-neuron LIF ensemble learns the forward kinematics x(q) of the REACH two-link
arm (NEF decoders; no training). nengo_jacobian differentiates the network:
Ĵ(q) = ∂(decoded hand)/∂(joint input), exact derivatives of its rate-mode version
(LIF → SoftLIFRate, lif_smoothing=0.02). An operational-space controller
u = Ĵᵀ Mₓ (kp (x* − x) − kv Ĵ q̇) + g then reaches to the 8 centre-out targets with

  (a) the analytic J (reference),
  (b) the network's Ĵ, refreshed every 10 ms, and the true hand position,
  (c) the network's Ĵ and its own hand estimate x̂ (no position sensor; between
      refreshes x̂ is extrapolated with the network's own Ĵ),
  (d) a negative control: the analytic J plus a fixed 50 % error, to show that the
      path metrics tell a good Jacobian from a bad one.

Run: ``python examples/spiking_fk_jacobian_osc.py [--fast] [--out DIR]``. It prints a
metrics table and saves ``osc_reaches.png`` (paths and error over time).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's graph-optimizer chatter

import numpy as np  # noqa: E402

from nengo_jacobian import arms  # noqa: E402
from nengo_jacobian.arms.neural import NeuralKinematics  # noqa: E402

REFRESH_STEPS = 10  # Ĵ (and x̂) refreshed at 100 Hz; 1 kHz gives the same paths


def accuracy(kin: NeuralKinematics, n_points: int, seed: int) -> dict:
    """FK and Jacobian errors of the network on random joint angles in its box."""
    arm = kin.arm
    q = kin.box.sample(n_points, np.random.default_rng(seed + 100))
    with kin.simulator(minibatch_size=250) as sim:
        x_hat = kin.fk(sim, q)
        J_hat = kin.jacobian(sim, q)
    fk_error = np.linalg.norm(x_hat - arm.fk(q), axis=-1)
    j_error = arms.jacobian_relative_error(J_hat, arm.jacobian(q))
    return {
        "fk_error_median_cm": 100 * float(np.median(fk_error)),
        "fk_error_p95_cm": 100 * float(np.percentile(fk_error, 95)),
        "jacobian_error_median": float(np.median(j_error)),
        "jacobian_error_p95": float(np.percentile(j_error, 95)),
    }


class NetworkController:
    """OSC with the network's Ĵ (and optionally x̂), refreshed every few steps."""

    def __init__(self, kin, sim, ctrl, use_network_position: bool):
        self.kin, self.sim, self.ctrl = kin, sim, ctrl
        self.use_network_position = use_network_position
        self.step = 0
        self.calls = 0

    def __call__(self, q, dq, target, t):
        if self.step % REFRESH_STEPS == 0:
            self.q_ref = q.copy()
            self.J = self.kin.jacobian(self.sim, q)
            if self.use_network_position:
                self.x_ref = self.kin.fk(self.sim, q)
            self.calls += 1
        self.step += 1
        x = None
        if self.use_network_position:
            # first-order hold: the network's own local linear model
            x = self.x_ref + self.J @ (q - self.q_ref)
        return self.ctrl(q, dq, target, J=self.J, x=x)


def reach(arm, controller_fn, targets) -> arms.ReachResult:
    return arms.run_reaches(
        arm,
        controller_fn,
        targets,
        q0=arm.inverse_kinematics(arms.REACH_CENTRE),
    )


def main(fast: bool = False, seed: int = 0, out: str | None = "robot-report") -> dict:
    """Run the example; return its metrics (lengths in cm, times in s).

    Parameters
    ----------
    fast : bool
        4 targets (8 reaches) instead of 8 (16 reaches); same network.
    seed : int
        Network seed.
    out : str or None
        Folder for the figure (None: no figure).
    """
    start = time.perf_counter()
    arm = arms.TwoLinkArm()
    kin = NeuralKinematics(arm, n_neurons=1000, seed=seed, lif_smoothing=0.02)
    metrics = accuracy(kin, 2000, seed)

    targets = arms.out_and_back(arms.centre_out_targets(4 if fast else 8))
    ctrl = arms.OperationalSpaceController(arm, kp=50)
    wrong_J = arms.corrupt_jacobian(arm.jacobian, 0.5, np.random.default_rng(seed))
    results = {}
    results["analytic J"] = reach(arm, lambda q, dq, x, t: ctrl(q, dq, x), targets)
    with kin.simulator(minibatch_size=1) as sim:
        for name, own_x in (("network J, true x", False), ("network J and x", True)):
            controller = NetworkController(kin, sim, ctrl, own_x)
            results[name] = reach(arm, controller, targets)
    results["wrong J (50 %)"] = reach(
        arm, lambda q, dq, x, t: ctrl(q, dq, x, J=wrong_J), targets
    )

    for name, result in results.items():
        s = result.summary()
        key = name.split(" (")[0].replace(",", "").replace(" ", "_")
        metrics[f"{key}_final_error_max_cm"] = 100 * s["final_error_max"]
        metrics[f"{key}_time_to_2cm_max_s"] = s["time_to_reach_max"]
        metrics[f"{key}_deviation_mean_cm"] = 100 * s["max_deviation_mean"]
        metrics[f"{key}_missed"] = s["n_missed"]
    metrics["seconds"] = time.perf_counter() - start

    print_table(metrics, results)
    if out is not None:
        path = plot(results, metrics, out)
        print(f"wrote {path}")
    return metrics


def print_table(metrics: dict, results: dict) -> None:
    print(
        f"\nNetwork: 1000 LIF, NEF decoders for x(q). On 2000 random q: FK error "
        f"median {metrics['fk_error_median_cm']:.2f} cm (p95 "
        f"{metrics['fk_error_p95_cm']:.2f}); ‖Ĵ−J‖/‖J‖ median "
        f"{100 * metrics['jacobian_error_median']:.1f} % (p95 "
        f"{100 * metrics['jacobian_error_p95']:.1f} %)."
    )
    print(
        f"\n{'controller':<20}{'final err max':>15}{'t to 2 cm max':>15}"
        f"{'mean path dev':>15}{'missed':>8}"
    )
    for name, result in results.items():
        s = result.summary()
        print(
            f"{name:<20}{100 * s['final_error_max']:>12.2f} cm"
            f"{s['time_to_reach_max']:>13.3f} s"
            f"{100 * s['max_deviation_mean']:>12.2f} cm"
            f"{s['n_missed']:>5d}/{s['n_reaches']}"
        )
    print(f"({metrics['seconds']:.1f} s in all)")


def plot(results: dict, metrics: dict, out: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    names = list(results)
    fig, axes = plt.subplots(
        2, len(names), figsize=(4 * len(names), 8), constrained_layout=True
    )
    for ax, name in zip(axes[0], names):
        result = results[name]
        s = result.summary()
        for path in result.hand:
            ax.plot(path[:, 0], path[:, 1], lw=1)
        ax.plot(*result.targets.T, "k+", ms=10)
        ax.set_aspect("equal")
        ax.set_title(
            f"{name}\nmean path dev {100 * s['max_deviation_mean']:.2f} cm", fontsize=10
        )
        ax.set_xlabel("hand x (m)")
    axes[0, 0].set_ylabel("hand y (m)")
    ax = axes[1, 0]
    for name in names:
        result = results[name]
        error = np.linalg.norm(result.hand - result.targets[:, None], axis=-1)
        ax.plot(result.t, 100 * error.mean(axis=0), label=name)
    ax.axhline(2, color="k", ls=":", lw=1, label="2 cm")
    ax.set_yscale("log")
    ax.set_xlabel("time in reach (s)")
    ax.set_ylabel("distance to target, mean over reaches (cm)")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    deviations = [
        100 * np.array([m.max_deviation for m in results[n].metrics()]) for n in names
    ]
    ax.boxplot(deviations)
    ax.set_xticks(range(1, len(names) + 1), [n.replace(", ", "\n") for n in names])
    ax.set_ylabel("max deviation from straight path (cm)")
    ax.tick_params(axis="x", labelsize=8)
    for ax in axes[1, 2:]:
        ax.axis("off")
    axes[1, 2].text(
        0.0,
        0.9,
        f"Network Jacobian vs analytic (2000 q):\n"
        f"median {100 * metrics['jacobian_error_median']:.1f} %, "
        f"p95 {100 * metrics['jacobian_error_p95']:.1f} %\n\n"
        f"FK error median {metrics['fk_error_median_cm']:.2f} cm\n\n"
        f"Ĵ: exact derivative of the rate-mode\nnetwork (LIF → SoftLIFRate).",
        va="top",
        fontsize=10,
    )
    fig.suptitle("Operational-space reaching with a spiking network's Jacobian")
    path = os.path.join(out, "osc_reaches.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="4 targets instead of 8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="robot-report")
    args = parser.parse_args()
    main(fast=args.fast, seed=args.seed, out=args.out)
