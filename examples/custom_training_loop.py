"""A custom training loop: labelled gradients handed to a tf.keras optimizer.

A spiking network learns y = x² on its second layer. Only the decoders of one
connection train (chosen by Nengo object), with Adam; sim.data then reports the trained
decoders. Run: python examples/custom_training_loop.py
"""

import nengo
import numpy as np
import tensorflow as tf

import nengo_jacobian

with nengo.Network(seed=0) as net:
    stim = nengo.Node(np.zeros(1), label="stim")
    a = nengo.Ensemble(100, 1, neuron_type=nengo.LIF(), label="a")
    b = nengo.Ensemble(100, 1, neuron_type=nengo.LIF(), label="b")
    nengo.Connection(stim, a, synapse=None, transform=[[1.0]])
    a_to_b = nengo.Connection(a, b, synapse=0.005)  # starts as identity, not x**2
    out = nengo.Probe(b, synapse=0.01, label="out")

n_steps = 30
x = np.linspace(-1, 1, 8)[:, None, None] * np.ones((1, n_steps, 1))
target = tf.constant(x**2, tf.float32)


def loss_fn(run):
    # the last 10 steps, after the synapses have settled; run[out] is rate mode
    return tf.reduce_mean(tf.square(run[out][:, -10:] - target[:, -10:]))


with nengo_jacobian.Simulator(net, minibatch_size=8, progress_bar=False) as sim:
    before = sim.data[a_to_b].weights.copy()
    loss, grads = sim.gradients(loss_fn, x, wrt=[a_to_b, b])
    for key, grad in grads.items():
        print(f"gradient w.r.t. {sim.weights[key].name}: shape {grad.shape}")

    optimizer = tf.keras.optimizers.Adam(1e-4)  # decoders are small numbers
    first = sim.train_step(loss_fn, optimizer, x, wrt=a_to_b)
    for _ in range(150):
        last = sim.train_step(loss_fn, optimizer, x, wrt=a_to_b)
    print(f"loss: {first:.4f} -> {last:.4f}")
    assert last < first / 5

    # the trained decoders are what NengoDL reports, and only they moved
    trained = sim.data[a_to_b].weights
    assert np.array_equal(trained, sim.weights[a_to_b].read())
    assert not np.allclose(trained, before)
    print("decoders changed by", float(np.abs(trained - before).max()))
