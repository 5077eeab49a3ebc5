"""Train a hidden-to-output Jacobian towards the identity.

The physics user's request: make ∂output/∂hidden as close as possible to I, without a
per-row loop. Here the hidden layer is ensemble ``hidden`` (its represented value) and
the Jacobian is the time-tied one at the last step (the steady-state gain of a change
held on the hidden value). It is in the loss, exactly, and trained with Adam.

A Jacobian in the loss means second derivatives of the neurons' rate curves. LIFRate's
slope diverges at the firing threshold, which makes such losses badly conditioned;
NengoDL's ``lif_smoothing`` (SoftLIFRate in rate mode) removes that, as it does for
ordinary training. Run: python examples/hidden_jacobian_identity.py
"""

# first: on TensorFlow >= 2.13 importing nengo_jacobian is what makes nengo_dl import
import nengo_jacobian
from nengo_jacobian import Hidden, losses

# isort: split
import nengo
import nengo_dl
import numpy as np
import tensorflow as tf

with nengo.Network(seed=1) as net:
    nengo_dl.configure_settings(lif_smoothing=0.05)
    stim = nengo.Node(np.zeros(2), label="stim")
    hidden = nengo.Ensemble(100, 2, neuron_type=nengo.LIF(), label="hidden")
    output = nengo.Ensemble(100, 2, neuron_type=nengo.LIF(), label="output")
    nengo.Connection(stim, hidden, synapse=None, transform=np.eye(2))
    # a mixing transform: far from the identity map we want
    mix = nengo.Connection(hidden, output, transform=[[0.3, 0.6], [-0.5, 0.2]])
    out = nengo.Probe(output, synapse=0.01, label="out")

x = np.random.RandomState(0).uniform(-0.5, 0.5, size=(4, 1, 2)) * np.ones((1, 40, 1))


def loss_fn(run):
    return losses.identity_penalty(run, out, Hidden(hidden))


def distance(sim):
    jac = sim.jacobian(out, Hidden(hidden), x)[:, -1].sum(axis=2)  # tied, last step
    return float(np.mean(np.linalg.norm(jac - np.eye(2), axis=(1, 2))))


with nengo_jacobian.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
    start = distance(sim)
    # decoders are ~1e-5 each (a neuron's share of the output), so is the step size
    optimizer = tf.keras.optimizers.Adam(5e-6)
    for _ in range(100):
        sim.train_step(loss_fn, optimizer, x, wrt=mix)
    end = distance(sim)
    print(f"mean ||J - I||_F: {start:.4f} -> {end:.4f} ({start / end:.0f}x smaller)")
    assert end < start / 10
