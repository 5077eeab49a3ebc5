"""sim.rate_outputs: the rate-mode forward pass, without side effects."""

import numpy as np
import tensorflow as tf
from conftest import two_layer_net


def test_rate_outputs_equal_the_training_graph_and_change_nothing(make_sim):
    net = two_layer_net(n_neurons=20, seed=2)
    sim = make_sim(net, minibatch_size=2)
    x = np.random.RandomState(0).uniform(-1, 1, (6, 7, 2))  # 3 minibatches
    sim.run_steps(3, data={net.stim: np.zeros((2, 3, 2))})  # non-zero saved state
    state = [v.numpy() for v in sim.tensor_graph.saved_state.values()]
    probe_data = sim.data[net.probe].copy()

    ours = sim.rate_outputs(net.probe, {net.stim: x})
    assert ours.shape == (6, 7, 2)

    # reference: NengoDL's own training-mode graph, minibatch by minibatch, each
    # starting from the saved state (state restored in between)
    expected = []
    for start in range(0, 6, 2):
        out = sim.keras_model(
            [tf.constant(x[start : start + 2], tf.float32), tf.constant([[7], [7]])],
            training=True,
        )
        expected.append(out[sim.model.probes.index(net.probe)].numpy())
        for v, s in zip(sim.tensor_graph.saved_state.values(), state):
            v.assign(s)
    np.testing.assert_allclose(ours, np.concatenate(expected), rtol=1e-5, atol=1e-6)

    again = sim.rate_outputs([net.probe], {net.stim: x})
    np.testing.assert_array_equal(again[net.probe], ours)
    for v, s in zip(sim.tensor_graph.saved_state.values(), state):
        np.testing.assert_array_equal(v.numpy(), s)
    np.testing.assert_array_equal(sim.data[net.probe], probe_data)
