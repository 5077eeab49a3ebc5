"""Jacobians of a spiking network w.r.t. its input and its labelled weights.

Run: python examples/jacobian_basics.py
"""

import nengo
import numpy as np

import nengo_jacobian

with nengo.Network(seed=0) as net:
    stim = nengo.Node(np.zeros(2), label="stim")
    a = nengo.Ensemble(50, 2, neuron_type=nengo.LIF(), label="a")
    b = nengo.Ensemble(50, 2, neuron_type=nengo.LIF(), label="b")
    nengo.Connection(stim, a, transform=np.eye(2), synapse=None)
    a_to_b = nengo.Connection(a, b, synapse=0.005)
    out = nengo.Probe(b, synapse=0.01, label="out")

x = np.random.RandomState(0).uniform(-0.5, 0.5, size=(2, 20, 2))  # 2 items, 20 steps

with nengo_jacobian.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
    # every weight, labelled by Nengo object; values are live views of NengoDL's
    # merged variables
    print(sim.weights)

    # d out / d stim for every item, output step and input step
    j_input = sim.jacobian(out, stim, x)
    print(
        "d out/d stim:",
        j_input.shape,
        "(items, out steps, out dims, in steps, in dims)",
    )

    # d out / d (decoders of a->b), and several targets at once
    j_weights = sim.jacobian(out, [a_to_b, a, b.neurons], x)
    for key, value in j_weights.items():
        print(f"d out/d {sim.weights[key].name}: {value.shape}")

    # the slow reference (one backward pass per output row) agrees
    reference = sim.jacobian(out, a_to_b, x, method="loop")
    error = np.max(np.abs(j_weights[a_to_b] - reference)) / np.max(np.abs(reference))
    print(f"relative difference to the one-row-at-a-time loop: {error:.1e}")
    # float32 rounding; auto compiles this small request with XLA, which sums in
    # another order, and LIF's steep rate curve near threshold amplifies that (7e-5)
    assert error < 1e-3, sim.jacobian_info

    # outputs never depend on later inputs
    assert all(np.all(j_input[:, t, :, t + 1 :] == 0) for t in range(j_input.shape[1]))
