"""A model file for ``nengo-jacobian run``: a spiking network that knows an arm.

    nengo-jacobian run examples/models/arm_kinematics.py --steps 1

A 1000-neuron LIF ensemble over the two joint angles (scaled to [-1, 1]) decodes the
hand position of the REACH two-link arm (links 1.5 m and 1.3 m). The Jacobian of the
``hand`` probe w.r.t. the ``joints`` Node at one step is the network's estimate of
the arm's kinematic Jacobian (times the joint scaling, 0.45 rad per unit).
"""

import nengo
import nengo_dl
import numpy as np

LENGTHS = (1.5, 1.3)
CENTRE, HALF_WIDTH = np.array([0.60, 2.23]), 0.45  # joint box, rad


def hand(scaled):
    """Hand position (m) from joint angles scaled to [-1, 1]."""
    q = CENTRE + HALF_WIDTH * np.asarray(scaled)
    return [
        LENGTHS[0] * np.cos(q[0]) + LENGTHS[1] * np.cos(q[0] + q[1]),
        LENGTHS[0] * np.sin(q[0]) + LENGTHS[1] * np.sin(q[0] + q[1]),
    ]


n_steps = 1

with nengo.Network(seed=0, label="arm kinematics") as model:
    nengo_dl.configure_settings(lif_smoothing=0.02)  # smooth rate model: better J
    joints = nengo.Node(np.zeros(2), label="joints")
    kin = nengo.Ensemble(1000, 2, radius=np.sqrt(2), label="kinematics")
    nengo.Connection(joints, kin, synapse=None)
    out = nengo.Node(size_in=2, label="hand node")
    nengo.Connection(kin, out, function=hand, synapse=None, label="kinematics->hand")
    nengo.Probe(out, synapse=None, label="hand")

# four arm configurations, one per minibatch item
data = {"joints": np.array([[[0.0, 0.0]], [[0.5, -0.5]], [[-0.5, 0.5]], [[0.8, 0.8]]])}
