"""A model file for ``nengo-jacobian run``: two spiking layers with recurrence.

    nengo-jacobian run examples/models/two_layer.py
    nengo-jacobian run examples/models/two_layer.py --probe out --wrt weights

The network is the module-level ``model``; ``n_steps`` and ``data`` are optional.
"""

import nengo
import numpy as np

n_steps = 40

with nengo.Network(seed=0, label="two layer") as model:
    stim = nengo.Node(np.zeros(2), label="stim")
    a = nengo.Ensemble(80, 2, neuron_type=nengo.LIF(), label="a")
    b = nengo.Ensemble(80, 2, neuron_type=nengo.LIF(), label="b")
    nengo.Connection(stim, a, transform=np.eye(2), synapse=None, label="stim->a")
    nengo.Connection(a, b, synapse=0.005, label="a->b")
    nengo.Connection(b, b, transform=[[0, -0.5], [0.5, 0]], synapse=0.05, label="b->b")
    out = nengo.Probe(b, synapse=0.01, label="out")
    hidden = nengo.Probe(a, synapse=0.01, label="a decoded")

# one input sequence: a slow rotation
t = np.arange(1, n_steps + 1) * 0.001
data = {"stim": 0.6 * np.stack([np.sin(30 * t), np.cos(30 * t)], axis=-1)[None]}
