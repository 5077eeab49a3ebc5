"""A spiking Nengo network that has learned an arm's kinematics, and its Jacobian.

Separate from the rest of `nengo_jacobian.arms` (numpy only) because it builds Nengo
networks and NengoDL simulators. Import it as ``from nengo_jacobian.arms.neural
import NeuralKinematics``.
"""

from __future__ import annotations

import nengo
import nengo_dl
import numpy as np

import nengo_jacobian
from nengo_jacobian.arms._base import Arm
from nengo_jacobian.arms.reach import REACH_JOINT_BOX, JointBox


class NeuralKinematics:
    """An LIF ensemble over joint angles whose decoders give the hand position.

    The ensemble represents the joint angles scaled into ``[-1, 1]`` per joint by
    ``box`` (radius √n so the box's corners are inside it); a connection with NEF
    decoders computes the arm's forward kinematics ``x(q)`` into the ``hand`` Node.
    Everything is ``synapse=None``, so one simulation step is the static map, and the
    network's Jacobian ``∂hand/∂q`` at one step is its estimate ``Ĵ(q)`` of the arm's
    kinematic Jacobian: exact derivatives of the rate-mode network (LIF →
    SoftLIFRate with ``lif_smoothing``), as NengoDL trains it.

    Parameters
    ----------
    arm : Arm
        The arm whose forward kinematics the decoders are solved for.
    box : JointBox
        Joint angles the network covers.
    n_neurons : int
        Ensemble size.
    seed : int
        Network seed.
    lif_smoothing : float or None
        NengoDL's ``lif_smoothing`` (smoother rate model, better Jacobians).

    Attributes
    ----------
    network : nengo.Network
    joints : nengo.Node
        Input: scaled joint angles, ``size_out = n_joints``.
    ensemble : nengo.Ensemble
    decoders : nengo.Connection
        Ensemble -> hand: the trainable kinematics.
    hand_probe : nengo.Probe
        The decoded hand position in metres.

    Examples
    --------
    >>> import numpy as np
    >>> from nengo_jacobian.arms import TwoLinkArm
    >>> from nengo_jacobian.arms.neural import NeuralKinematics
    >>> arm = TwoLinkArm()
    >>> kin = NeuralKinematics(arm, n_neurons=500)
    >>> q = np.array([[0.6, 2.2], [0.8, 2.0]])
    >>> with kin.simulator(minibatch_size=2) as sim:
    ...     J_hat = kin.jacobian(sim, q)
    >>> J_hat.shape
    (2, 2, 2)
    >>> bool(np.median(np.linalg.norm(J_hat - arm.jacobian(q), axis=(1, 2))) < 0.2)
    True
    """

    def __init__(
        self,
        arm: Arm,
        box: JointBox = REACH_JOINT_BOX,
        n_neurons: int = 1000,
        seed: int = 0,
        lif_smoothing: float | None = 0.02,
    ):
        self.arm, self.box = arm, box
        n = arm.n_joints
        with nengo.Network(seed=seed, label="neural kinematics") as net:
            nengo_dl.configure_settings(lif_smoothing=lif_smoothing)
            self.joints = nengo.Node(np.zeros(n), label="joints")
            self.ensemble = nengo.Ensemble(
                n_neurons, n, radius=np.sqrt(n), label="kinematics"
            )
            self.hand = nengo.Node(size_in=arm.task_dims, label="hand")
            nengo.Connection(self.joints, self.ensemble, synapse=None, label="q")
            self.decoders = nengo.Connection(
                self.ensemble,
                self.hand,
                function=lambda s: arm.fk(box.from_unit(s)),
                synapse=None,
                label="kinematics->hand",
            )
            self.hand_probe = nengo.Probe(self.hand, synapse=None, label="hand")
        self.network = net

    def simulator(self, minibatch_size: int = 1, **kwargs) -> nengo_jacobian.Simulator:
        """A `nengo_jacobian.Simulator` of the network (no progress bars)."""
        kwargs.setdefault("progress_bar", False)
        return nengo_jacobian.Simulator(
            self.network, minibatch_size=minibatch_size, **kwargs
        )

    def _data(self, sim, q) -> tuple[dict, int]:
        s = self.box.to_unit(
            np.asarray(q, dtype=np.float64).reshape(-1, self.arm.n_joints)
        )
        n = len(s)
        pad = -n % sim.minibatch_size  # items must fill whole minibatches
        s = np.concatenate([s, np.repeat(s[-1:], pad, axis=0)])
        return {self.joints: s[:, None, :]}, n

    def fk(self, sim: nengo_jacobian.Simulator, q) -> np.ndarray:
        """The network's hand position ``x̂(q)`` (rate mode), shape ``(..., 2)``."""
        data, n = self._data(sim, q)
        x = sim.rate_outputs(self.hand_probe, data, n_steps=1)[:n, 0]
        return x.reshape(np.shape(q)[:-1] + (self.arm.task_dims,))

    def jacobian(self, sim: nengo_jacobian.Simulator, q) -> np.ndarray:
        """The network's Jacobian ``Ĵ(q) = ∂x̂/∂q`` in m/rad, shape ``(..., 2, n)``."""
        data, n = self._data(sim, q)
        J = sim.jacobian(self.hand_probe, self.joints, data, n_steps=1)[:n, 0, :, 0, :]
        J = J / self.box._arrays()[1]  # chain rule through the scaling s = (q - c) / h
        return J.reshape(np.shape(q)[:-1] + J.shape[1:])
