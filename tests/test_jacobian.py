"""Jacobian values: engines against each other, finite differences and closed forms.

Tolerances:
- reverse vs loop, float32: both compute the same chain rule in float32 with different
  summation orders; differences are rounding (~1e-7 relative), the bound is 1e-5.
- autodiff vs central finite differences, float64: step 1e-5 on inputs/weights of order
  1 gives truncation O(h²·f''') ≈ 1e-10 and rounding O(ε/h) ≈ 1e-11; bound 1e-5.
- closed forms: exact up to float32 rounding of the simulated quantities (1e-6).
"""

import nengo
import nengo_dl
import numpy as np
import pytest
import tensorflow as tf
from conftest import max_rel_error, two_layer_net

import nengo_jacobian

NEURON_TYPES = {
    "LIF": nengo.LIF(),
    "RectifiedLinear": nengo.RectifiedLinear(),
    "Sigmoid": nengo.Sigmoid(tau_ref=0.002),
}


def random_inputs(n_items, n_steps, dims, seed=1, scale=0.8):
    return np.random.RandomState(seed).uniform(-scale, scale, (n_items, n_steps, dims))


def weight_targets(net):
    return [net.c_in, net.c_ab, net.c_nn, net.c_rec, net.a, net.b.neurons]


@pytest.mark.parametrize("neuron_type", list(NEURON_TYPES))
@pytest.mark.parametrize("minibatch_size, n_items", [(1, 1), (2, 4)])
def test_reverse_equals_reference_loop(make_sim, neuron_type, minibatch_size, n_items):
    net = two_layer_net(NEURON_TYPES[neuron_type], n_neurons=20)
    sim = make_sim(net, minibatch_size=minibatch_size)
    x = random_inputs(n_items, 6, 2)
    wrt = [net.stim] + weight_targets(net)
    fast = sim.jacobian(net.probe, wrt, x)
    assert sim.jacobian_info["engine"] in ("reverse", "reverse (XLA)")
    slow = sim.jacobian(net.probe, wrt, x, method="loop")
    assert sim.jacobian_info["engine"] == "loop"
    for key in wrt:
        assert fast[key].shape == slow[key].shape
        assert max_rel_error(fast[key], slow[key]) < 1e-5, key


@pytest.mark.parametrize("minibatch_size, n_items", [(1, 1), (2, 4)])
def test_lane_planners_agree(make_sim, monkeypatch, minibatch_size, n_items):
    # The lane graph merges operators or not by signal size (lanes.lane_planner);
    # force each choice on the same network: both equal the loop, which uses the
    # user's own graph. Either way lanes of one item share their matrix products
    # (lanes.share_linear), merged ones included.
    net = two_layer_net(nengo.LIF(), n_neurons=20)
    x = random_inputs(n_items, 6, 2)
    wrt = [net.stim] + weight_targets(net)
    results = {}
    products = []
    share = nengo_jacobian.lanes.share_linear
    monkeypatch.setattr(
        nengo_jacobian.lanes,
        "share_linear",
        lambda fn, *args: products.append(fn.__name__) or share(fn, *args),
    )
    for planner, threshold in (("tree", np.inf), ("noop", 0)):
        monkeypatch.setattr(
            nengo_jacobian.lanes, "MERGE_BELOW_ELEMENTS_PER_OP", threshold
        )
        sim = make_sim(net, minibatch_size=minibatch_size)
        products.clear()
        results[planner] = sim.jacobian(net.probe, wrt, x, method="reverse")
        (lanes,) = [v for k, v in sim._jacobian_cache.items() if k[0] == "lanes"]
        merged = max(len(ops) for ops in lanes.plan) > 1
        assert merged == (planner == "tree")
        assert ("_merged_product" in products) == merged, products
        assert "_product" in products, products
    slow = sim.jacobian(net.probe, wrt, x, method="loop")
    for key in wrt:
        assert max_rel_error(results["noop"][key], results["tree"][key]) < 1e-5, key
        assert max_rel_error(results["noop"][key], slow[key]) < 1e-5, key


def test_lane_planner_rule(make_sim):
    planner = nengo_jacobian.lanes.lane_planner
    optimizer = nengo_dl.graph_optimizer
    # few, large signals (the benchmark's shape): unmerged
    big = make_sim(two_layer_net(nengo.LIF(), n_neurons=300, dims=4))
    assert planner(big.model.operators) is optimizer.noop_planner
    # many small ensembles: merged
    with nengo.Network(seed=0) as chain:
        prev = nengo.Node(np.zeros(2))
        for _ in range(12):
            ens = nengo.Ensemble(10, 2)
            nengo.Connection(prev, ens)
            prev = ens
    small = make_sim(chain)
    assert planner(small.model.operators) is optimizer.tree_planner


def fd_jacobian(f, x0, h=1e-5):
    """Central differences of f (array -> array) at x0, one column per entry."""
    x0 = np.asarray(x0, dtype=np.float64)
    cols = []
    for i in range(x0.size):
        dx = np.zeros(x0.size)
        dx[i] = h
        plus = f(x0 + dx.reshape(x0.shape))
        minus = f(x0 - dx.reshape(x0.shape))
        cols.append((plus - minus) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("neuron_type", list(NEURON_TYPES))
def test_input_jacobian_matches_finite_differences(make_sim, neuron_type):
    # learning_phase=True makes sim.predict run the same rate-mode graph that the
    # Jacobian differentiates, so finite differences of predict are the reference.
    net = two_layer_net(
        NEURON_TYPES[neuron_type], n_neurons=15, dtype="float64", learning_phase=True
    )
    sim = make_sim(net)
    x = random_inputs(1, 5, 2, scale=0.5)

    def f(flat_x):
        return sim.predict({net.stim: flat_x.reshape(x.shape)})[net.probe].ravel()

    expected = fd_jacobian(f, x.ravel()).reshape(1, 5, 2, 5, 2)
    actual = sim.jacobian(net.probe, net.stim, x)
    assert actual.dtype == np.float64
    assert max_rel_error(actual, expected) < 1e-5


@pytest.mark.parametrize("neuron_type", ["LIF", "Sigmoid"])
def test_weight_jacobian_matches_finite_differences(make_sim, neuron_type):
    net = two_layer_net(
        NEURON_TYPES[neuron_type], n_neurons=15, dtype="float64", learning_phase=True
    )
    sim = make_sim(net)
    x = random_inputs(1, 5, 2, scale=0.5)
    rng = np.random.RandomState(3)
    for obj in weight_targets(net):
        entry = sim.weights[obj]
        original = entry.read()
        # a few entries per weight keep the test fast; which ones is seeded
        picks = rng.choice(entry.size, size=min(4, entry.size), replace=False)

        def f(values, picks=picks, entry=entry, original=original):
            w = original.copy().ravel()
            w[picks] = values
            entry.assign(w.reshape(entry.shape))
            return sim.predict({net.stim: x})[net.probe].ravel()

        expected = fd_jacobian(f, original.ravel()[picks])
        entry.assign(original)
        full = sim.jacobian(net.probe, obj, x).reshape(5 * 2, entry.size)
        assert max_rel_error(full[:, picks], expected) < 1e-5, entry.name


def test_spiking_jacobian_is_rate_mode_jacobian(make_sim):
    # LIF is differentiated as LIFRate: same seed, same parameters, same Jacobian.
    spiking = make_sim(two_layer_net(nengo.LIF(), n_neurons=20))
    rate = make_sim(two_layer_net(nengo.LIFRate(), n_neurons=20))
    x = random_inputs(1, 6, 2)
    j_spiking = spiking.jacobian(spiking.model.toplevel.probe, "stim", x)
    j_rate = rate.jacobian(rate.model.toplevel.probe, "stim", x)
    assert max_rel_error(j_spiking, j_rate) < 1e-6


def test_node_transform_closed_form(make_sim):
    # Node -> Node with transform W and synapse=None: dy(t)/dx(s) = W if s == t else 0
    w = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]])
    with nengo.Network() as net:
        stim = nengo.Node(np.zeros(3))
        out = nengo.Node(size_in=2)
        nengo.Connection(stim, out, transform=w, synapse=None)
        probe = nengo.Probe(out, synapse=None)
    sim = make_sim(net, minibatch_size=2)
    for method in ("reverse", "loop"):
        jac = sim.jacobian(probe, stim, random_inputs(2, 4, 3), method=method)
        expected = np.einsum("ts,ij->tisj", np.eye(4), w)
        np.testing.assert_allclose(jac, np.broadcast_to(expected, jac.shape), atol=1e-6)
        # and w.r.t. the weights: dy_i(t)/dW[j, k] = [i == j] x_k(t)
        x = random_inputs(2, 4, 3, seed=5)
        jw = sim.jacobian(probe, net.all_connections[0], x, method=method)
        expected_w = np.einsum("ij,btk->btijk", np.eye(2), x)
        np.testing.assert_allclose(jw, expected_w, rtol=1e-6, atol=1e-6)


def test_lowpass_chain_gives_impulse_response(make_sim):
    # a linear chain: the Jacobian is a Toeplitz matrix of the impulse response,
    # which core Nengo computes independently of TensorFlow
    taus = (0.005, 0.02)
    n_steps = 12

    def chain(stim_output):
        with nengo.Network() as net:
            stim = nengo.Node(stim_output)
            mid = nengo.Node(size_in=1)
            end = nengo.Node(size_in=1)
            nengo.Connection(stim, mid, synapse=nengo.Lowpass(taus[0]))
            nengo.Connection(mid, end, synapse=nengo.Lowpass(taus[1]))
            probe = nengo.Probe(end, synapse=None)
        return net, stim, probe

    impulse = np.zeros(n_steps)
    impulse[0] = 1.0
    net, _, probe = chain(nengo.processes.PresentInput(impulse[:, None], 0.001))
    with nengo.Simulator(net, progress_bar=False) as core:
        core.run_steps(n_steps)
    h = core.data[probe][:, 0]
    assert np.max(np.abs(h)) > 0

    net, stim, probe = chain(np.zeros(1))
    jac = make_sim(net).jacobian(probe, stim, n_steps=n_steps)[0, :, 0, :, 0]
    expected = np.array(
        [[h[t - s] if t >= s else 0.0 for s in range(n_steps)] for t in range(n_steps)]
    )
    np.testing.assert_allclose(jac, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", ["reverse", "loop"])
def test_causality(make_sim, method):
    net = two_layer_net(nengo.LIF(), n_neurons=20)
    sim = make_sim(net)
    jac = sim.jacobian(net.probe, net.stim, random_inputs(1, 8, 2), method=method)
    t_out, t_in = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    future = jac[0].transpose(0, 2, 1, 3)[t_in > t_out]
    assert np.all(future == 0)
    # two synapses (0.005, probe 0.01) delay the response by two steps
    assert np.any(jac[0, 2:, :, 0, :] != 0)


def test_chunked_equals_unchunked(make_sim):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=20)
    sim = make_sim(net, minibatch_size=2)
    x = random_inputs(2, 5, 2)
    whole = sim.jacobian(net.probe, [net.stim, net.c_ab], x)
    assert sim.jacobian_info["passes"] == 1
    chunked = sim.jacobian(net.probe, [net.stim, net.c_ab], x, chunk_size=7)
    assert sim.jacobian_info["passes"] == 3  # 2 items x 10 rows in lanes of 7
    for key in whole:
        assert max_rel_error(chunked[key], whole[key]) < 1e-6


def test_causal_passes_simulate_only_the_steps_rows_need(make_sim):
    # Rows are taken in order of output step, and each pass stops at its latest
    # row's step; a keep_history=False probe (the last step) needs every step.
    net = two_layer_net(nengo.LIF(), n_neurons=20)
    with net:
        nengo_dl.configure_settings(keep_history=True)
        last = nengo.Probe(net.b, synapse=0.01)
        net.config[last].keep_history = False
    sim = make_sim(net, minibatch_size=2)
    x = random_inputs(2, 8, 2)
    wrt = [net.stim, net.c_ab, (net.a, "encoders"), net.b.neurons]
    slow = sim.jacobian([net.probe, last], wrt, x, method="loop")
    chunked = sim.jacobian([net.probe, last], wrt, x, chunk_size=6)
    # 2 items x (8 steps x 2 dims + 1 x 2 dims) = 36 rows in passes of 6 lanes
    assert sim.jacobian_info["steps_simulated"] == [2, 3, 5, 6, 8, 8]
    for probe in (net.probe, last):
        for key in wrt:
            error = max_rel_error(chunked[probe][key], slow[probe][key])
            assert error < 1e-5, (probe, key)
    picked = sim.jacobian(net.probe, wrt, x, output_steps=[1, 2], chunk_size=4)
    assert sim.jacobian_info["steps_simulated"] == [2, 3]
    for key in wrt:
        assert max_rel_error(picked[key], slow[net.probe][key][:, 1:3]) < 1e-5


def test_causal_pass_count_model():
    from nengo_jacobian.engines.reverse import causal_passes

    needed = np.repeat(np.arange(1, 51), 4)  # 50 steps x 4 dims, sorted
    # per-step overhead dominates: one pass; per-lane work dominates: more passes
    assert causal_passes(needed, 1, step_overhead=1e9, lane_cost=1.0) == 1
    assert causal_passes(needed, 1, step_overhead=1.0, lane_cost=1e3) == 8
    assert causal_passes(needed, 2, step_overhead=1e9, lane_cost=1.0) == 2
    # never an empty pass
    assert causal_passes(np.arange(1, 10), 1, 1.0, 1e3) * 2 <= 10 + 2


def test_result_structure(make_sim):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=10)
    with net:
        p_a = nengo.Probe(net.a, synapse=None)
        nengo_dl.configure_settings(keep_history=True)
        last = nengo.Probe(net.b.neurons, synapse=None)
        net.config[last].keep_history = False
    sim = make_sim(net)
    x = random_inputs(1, 4, 2)

    single = sim.jacobian(net.probe, net.c_ab, x)
    assert single.shape == (1, 4, 2, 2, 10)
    by_wrt = sim.jacobian(net.probe, [net.stim, (net.a, "encoders")], x)
    assert set(by_wrt) == {net.stim, (net.a, "encoders")}
    assert by_wrt[(net.a, "encoders")].shape == (1, 4, 2, 10, 2)
    by_probe = sim.jacobian([net.probe, p_a, last], net.stim, x)
    assert by_probe[last].shape == (1, 1, 10, 4, 2)
    nested = sim.jacobian([net.probe, p_a], [net.stim, net.b.neurons], x)
    assert nested[p_a][net.b.neurons].shape == (1, 4, 2, 10)
    assert np.all(nested[p_a][net.b.neurons] == 0)  # a does not depend on b
    # different requests run different lane graphs (and may pick different engines):
    # equal up to float32 rounding
    assert max_rel_error(nested[net.probe][net.stim], by_probe[net.probe]) < 1e-5


def test_jacobian_reads_live_weights(make_sim):
    w = np.array([[2.0]])
    with nengo.Network() as net:
        stim = nengo.Node([0.0])
        out = nengo.Node(size_in=1)
        conn = nengo.Connection(stim, out, transform=w, synapse=None)
        probe = nengo.Probe(out, synapse=None)
    sim = make_sim(net)
    assert sim.jacobian(probe, stim, n_steps=2)[0, 1, 0, 1, 0] == pytest.approx(2.0)
    sim.weights[conn].assign([[-3.0]])
    for method in ("reverse", "loop"):
        jac = sim.jacobian(probe, stim, n_steps=2, method=method)
        assert jac[0, 1, 0, 1, 0] == pytest.approx(-3.0)


@pytest.mark.parametrize(
    "method", ["reverse", "loop", "forward", "finite_difference", "pfor"]
)
@pytest.mark.parametrize("with_learning_rule", [False, True])
def test_jacobian_leaves_simulator_unchanged(make_sim, method, with_learning_rule):
    net = two_layer_net(nengo.LIF(), n_neurons=20)
    if with_learning_rule:
        with net:
            # PES changes its weights on every run of the simulation
            err = nengo.Node(size_in=2)
            learned = nengo.Connection(net.a, err, learning_rule_type=nengo.PES())
            nengo.Connection(err, learned.learning_rule)
            nengo.Connection(net.stim, err, transform=-1)
    # pfor needs the simulation unrolled over exactly the requested steps
    unrolled = dict(unroll_simulation=6) if method == "pfor" else {}
    if method == "pfor":
        with net:
            nengo_dl.configure_settings(use_loop=False)
    sim = make_sim(net, minibatch_size=2, **unrolled)
    n_before = 6 if method == "pfor" else 5
    sim.run_steps(n_before)  # leave some state behind
    probe_data = np.array(sim.data[net.probe])
    x = random_inputs(2, 6, 2)
    predicted = sim.predict(x)[net.probe]
    variables = [
        *sim.tensor_graph.base_params.values(),
        *sim.tensor_graph.saved_state.values(),
    ]
    before = [v.numpy() for v in variables]

    # forward mode and finite differences have no weight targets
    wrt = (
        [net.stim, net.c_ab, net.a]
        if method in ("reverse", "loop", "pfor")
        else net.stim
    )
    sim.jacobian(net.probe, wrt, x, method=method)

    for v, value in zip(variables, before):
        np.testing.assert_array_equal(v.numpy(), value, err_msg=v.name)
    np.testing.assert_array_equal(sim.data[net.probe], probe_data)
    assert sim.n_steps == n_before
    if not with_learning_rule:  # with PES, every predict differs from the last
        np.testing.assert_array_equal(sim.predict(x)[net.probe], predicted)


def test_starts_from_saved_state(make_sim):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=20)
    sim = make_sim(net)
    x = random_inputs(1, 5, 2)
    fresh = sim.jacobian(net.probe, net.stim, x)
    sim.run_steps(10, data={net.stim: random_inputs(1, 10, 2, seed=9)})
    advanced = sim.jacobian(net.probe, net.stim, x)
    reference = sim.jacobian(net.probe, net.stim, x, method="loop")
    assert max_rel_error(advanced, reference) < 1e-5
    assert max_rel_error(advanced, fresh) > 1e-3  # the state mattered


def test_process_inputs_are_not_advanced(make_sim):
    with nengo.Network(seed=0) as net:
        noise = nengo.Node(nengo.processes.WhiteNoise(), size_out=1, label="noise")
        ens = nengo.Ensemble(10, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(noise, ens, synapse=None)
        probe = nengo.Probe(ens, synapse=None)
    sim = make_sim(net)
    reference = make_sim(net)
    sim.jacobian(probe, ens, n_steps=4)
    np.testing.assert_array_equal(
        sim.predict(n_steps=4)[probe], reference.predict(n_steps=4)[probe]
    )


def test_tensor_node_with_keras_layer(make_sim):
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(3), label="stim")
        layer = nengo_dl.Layer(
            tf.keras.layers.Dense(4, activation=tf.nn.tanh, name="dense")
        )(stim)
        ens = nengo.Ensemble(20, 4, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(layer, ens, synapse=None)
        probe = nengo.Probe(ens, synapse=0.005)
    sim = make_sim(net)
    kernels = [w for w in sim.keras_model.weights if "dense" in w.name]
    values = [k.numpy() for k in kernels]
    x = random_inputs(1, 4, 3)
    fast = sim.jacobian(probe, stim, x)
    slow = sim.jacobian(probe, stim, x, method="loop")
    assert max_rel_error(fast, slow) < 1e-5
    # the user's layer still owns the same variables, with the same values
    assert [w for w in sim.keras_model.weights if "dense" in w.name] == kernels
    for k, v in zip(kernels, values):
        np.testing.assert_array_equal(k.numpy(), v)


@pytest.mark.parametrize("method", ["reverse", "loop"])
def test_unrolled_simulator(make_sim, method):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=15)
    x = random_inputs(1, 4, 2)
    plain = make_sim(net).jacobian(net.probe, [net.stim, net.c_ab], x)
    unrolled = make_sim(net, unroll_simulation=2).jacobian(
        net.probe, [net.stim, net.c_ab], x, method=method
    )
    for key in plain:
        assert max_rel_error(unrolled[key], plain[key]) < 1e-5


def test_hidden_signals_closed_form(make_sim):
    a_mat = np.array([[1.0, 2.0], [0.0, -1.0]])
    b_mat = np.array([[0.5, -3.0], [2.0, 1.0], [1.0, 1.0]])
    with nengo.Network() as net:
        stim = nengo.Node(np.zeros(2))
        relay = nengo.Node(size_in=2, label="relay")
        out = nengo.Node(size_in=3)
        first = nengo.Connection(stim, relay, transform=a_mat, synapse=None)
        second = nengo.Connection(relay, out, transform=b_mat, synapse=None)
        probe = nengo.Probe(out, synapse=None)
    sim = make_sim(net)
    x = random_inputs(1, 3, 2)
    jac = sim.jacobian(
        probe,
        [
            nengo_jacobian.Hidden(relay),
            nengo_jacobian.Hidden(first),
            nengo_jacobian.Hidden(second),
        ],
        x,
    )
    eye_t = np.eye(3)
    expected = {
        nengo_jacobian.Hidden(relay): np.einsum("ts,ij->tisj", eye_t, b_mat),
        nengo_jacobian.Hidden(first): np.einsum("ts,ij->tisj", eye_t, b_mat),
        nengo_jacobian.Hidden(second): np.einsum("ts,ij->tisj", eye_t, np.eye(3)),
    }
    for key, value in expected.items():
        np.testing.assert_allclose(jac[key][0], value, atol=1e-6)


@pytest.mark.parametrize("neuron_type", ["LIF", "Sigmoid"])
def test_hidden_value_chain_rule(make_sim, neuron_type):
    # stim enters a through transform 0.8 * I with synapse=None, so
    # d out/d stim(s) = d out/d value_a(s) @ (0.8 I), exactly
    net = two_layer_net(NEURON_TYPES[neuron_type], n_neurons=20)
    sim = make_sim(net)
    x = random_inputs(1, 6, 2)
    both = sim.jacobian(net.probe, [net.stim, nengo_jacobian.Hidden(net.a)], x)
    via_hidden = both[nengo_jacobian.Hidden(net.a)] @ (0.8 * np.eye(2))
    assert max_rel_error(via_hidden, both[net.stim]) < 1e-5
    # activities: d out/d a.neurons has one column per neuron
    acts = sim.jacobian(net.probe, nengo_jacobian.Hidden(net.a.neurons), x)
    assert acts.shape == (1, 6, 2, 6, 20)
    with pytest.raises(NotImplementedError, match="Hidden targets"):
        sim.jacobian(net.probe, nengo_jacobian.Hidden(net.a), x, method="loop")


@pytest.mark.parametrize("kind", ["numpy+jacobian", "tensorflow"])
def test_differentiable_node(make_sim, kind):
    from nengo_jacobian.nodes import differentiable_node

    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        if kind == "tensorflow":
            node = differentiable_node(lambda x: 2 * tf.tanh(x), 2, 2, label="f")
        else:
            node = differentiable_node(
                lambda x: 2 * np.tanh(x),
                2,
                2,
                jacobian=lambda x: np.diag(2 * (1 - np.tanh(x) ** 2)),
                label="f",
            )
        nengo.Connection(stim, node, synapse=None)
        probe = nengo.Probe(node, synapse=None)
    sim = make_sim(net, minibatch_size=2)
    x = random_inputs(2, 3, 2)
    jac = sim.jacobian(probe, stim, x)
    expected = np.zeros_like(jac)
    for t in range(3):
        for i in range(2):
            expected[:, t, i, t, i] = 2 * (1 - np.tanh(x[:, t, i]) ** 2)
    np.testing.assert_allclose(jac, expected, rtol=1e-5, atol=1e-7)


def test_use_loop_false(make_sim):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=15)
    x = random_inputs(1, 4, 2)
    plain = make_sim(net).jacobian(net.probe, [net.stim, net.c_ab], x)
    with net:
        nengo_dl.configure_settings(use_loop=False)
    sim = make_sim(net, unroll_simulation=4)
    for method in ("reverse", "loop"):
        unrolled = sim.jacobian(net.probe, [net.stim, net.c_ab], x, method=method)
        for key in plain:
            assert max_rel_error(unrolled[key], plain[key]) < 1e-5


def test_pfor_engine(make_sim):
    # TensorFlow's own vectorized tape.jacobian, on an unrolled simulator; per-item
    # weight Jacobians over a minibatch of 2 (4 items), against the loop
    net = two_layer_net(nengo.LIF(), n_neurons=15)
    with net:
        nengo_dl.configure_settings(use_loop=False)
    sim = make_sim(net, minibatch_size=2, unroll_simulation=5)
    x = random_inputs(4, 5, 2)
    wrt = [net.stim, net.c_ab, (net.a, "encoders"), net.b.neurons]
    fast = sim.jacobian(net.probe, wrt, x, method="pfor")
    assert sim.jacobian_info["engine"] == "pfor"
    slow = sim.jacobian(net.probe, wrt, x, method="loop")
    for key in wrt:
        assert fast[key].shape == slow[key].shape
        assert max_rel_error(fast[key], slow[key]) < 1e-5, key
    last = sim.jacobian(net.probe, net.stim, x, method="pfor", output_steps=-1)
    assert max_rel_error(last, slow[net.stim][:, -1]) < 1e-5
    with pytest.raises(nengo_jacobian.JacobianError, match="unroll_simulation=3"):
        sim.jacobian(net.probe, net.stim, x[:, :3], method="pfor")
    looped = make_sim(two_layer_net(nengo.LIF(), n_neurons=15))
    with pytest.raises(nengo_jacobian.JacobianError, match="use_loop=False"):
        looped.jacobian(looped.model.toplevel.probe, "stim", x[:1], method="pfor")


@pytest.mark.parametrize(
    "dtype, tolerance",
    # float64: h = 6e-6, truncation ~h^2 and rounding ~eps/h are both < 1e-9.
    # float32: h = 4.9e-3; rounding ~eps*|y|/h = 2.4e-5 |y|, and here |y| is ~100x
    # the largest Jacobian entry, so ~3e-3 of it
    [("float64", 1e-6), ("float32", 1e-2)],
)
def test_finite_difference_engine(make_sim, dtype, tolerance):
    net = two_layer_net(nengo.Sigmoid(tau_ref=0.002), n_neurons=15, dtype=dtype)
    sim = make_sim(net, minibatch_size=2)
    x = random_inputs(2, 5, 2, scale=0.5)
    wrt = [net.stim, nengo_jacobian.Hidden(net.a), nengo_jacobian.Hidden(net.c_ab)]
    exact = sim.jacobian(net.probe, wrt, x)
    fd = sim.jacobian(net.probe, wrt, x, method="finite_difference", chunk_size=24)
    assert sim.jacobian_info["engine"] == "finite_difference"
    for key in wrt:
        assert max_rel_error(fd[key], exact[key]) < tolerance, key
    with pytest.raises(NotImplementedError, match="weights are shared"):
        sim.jacobian(net.probe, net.c_ab, x, method="finite_difference")


@pytest.mark.parametrize(
    "method", ["reverse", "reverse_xla", "loop", "finite_difference", "forward"]
)
def test_output_steps_and_tied(make_sim, method):
    net = two_layer_net(nengo.Sigmoid(tau_ref=0.002), n_neurons=15, dtype="float64")
    sim = make_sim(net, minibatch_size=2)
    x = random_inputs(2, 6, 2, scale=0.5)
    full = sim.jacobian(net.probe, net.stim, x)
    tolerance = 1e-6  # float64; finite differences included (see above)
    last = sim.jacobian(net.probe, net.stim, x, output_steps=-1, method=method)
    assert last.shape == (2, 2, 6, 2)
    assert max_rel_error(last, full[:, -1]) < tolerance
    window = sim.jacobian(
        net.probe, net.stim, x, output_steps=slice(2, 5), method=method
    )
    assert max_rel_error(window, full[:, 2:5]) < tolerance
    if method == "reverse":
        assert sim.jacobian_info["lanes"] == 2 * 3 * 2  # only the rows asked for
    picked = sim.jacobian(net.probe, net.stim, x, output_steps=[0, 5], method=method)
    assert max_rel_error(picked[:, 1], full[:, 5]) < tolerance
    tied = sim.jacobian(net.probe, net.stim, x, tied=True, method=method)
    assert tied.shape == (2, 6, 2, 2)
    assert max_rel_error(tied, full.sum(axis=3)) < tolerance


def test_output_steps_errors(make_sim):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=10)
    sim = make_sim(net)
    with pytest.raises(nengo_jacobian.JacobianError, match=r"out of range .*Probe out"):
        sim.jacobian(net.probe, net.stim, n_steps=3, output_steps=7)
    with pytest.raises(nengo_jacobian.JacobianError, match=r"weights are constant"):
        sim.jacobian(net.probe, net.c_ab, n_steps=3, tied=True)


def test_vjp_and_jvp_match_the_jacobian(make_sim):
    net = two_layer_net(nengo.LIF(), n_neurons=15)
    sim = make_sim(net, minibatch_size=2)
    x = random_inputs(2, 5, 2)
    rng = np.random.RandomState(0)
    for wrt in (net.stim, net.c_ab, nengo_jacobian.Hidden(net.b)):
        jac = sim.jacobian(net.probe, wrt, x)
        wrt_shape = jac.shape[3:]
        v = rng.normal(size=(2, 3, 5, 2))
        pulled = sim.vjp(net.probe, wrt, v, x)
        expected = np.einsum("bktd,btd...->bk...", v, jac)
        assert pulled.shape == (2, 3) + wrt_shape
        assert max_rel_error(pulled, expected) < 1e-5
        single = sim.vjp(net.probe, wrt, v[:, 0], x)
        assert max_rel_error(single, expected[:, 0]) < 1e-5
        z = rng.normal(size=(2, 2) + wrt_shape)
        pushed = sim.jvp(net.probe, wrt, z, x)
        axes = "".join("ijkl"[: len(wrt_shape)])
        expected = np.einsum(f"btd{axes},bk{axes}->bktd", jac, z)
        assert pushed.shape == (2, 2, 5, 2)
        assert max_rel_error(pushed, expected) < 1e-5
    with pytest.raises(nengo_jacobian.DataError, match=r"cotangents must have shape"):
        sim.vjp(net.probe, net.stim, np.zeros((2, 4, 2)), x)


def test_forward_mode_matches_reverse(make_sim):
    net = two_layer_net(nengo.LIF(), n_neurons=15)
    sim = make_sim(net, minibatch_size=2)
    x = random_inputs(2, 5, 2)
    wrt = [net.stim, nengo_jacobian.Hidden(net.b.neurons)]
    reverse = sim.jacobian(net.probe, wrt, x)
    forward = sim.jacobian(net.probe, wrt, x, method="forward", chunk_size=7)
    assert sim.jacobian_info["engine"] == "forward"
    for key in wrt:
        assert max_rel_error(forward[key], reverse[key]) < 1e-5
    with pytest.raises(NotImplementedError, match="use method='reverse' for weights"):
        sim.jacobian(net.probe, net.c_ab, x, method="forward")


def test_auto_picks_by_shape(make_sim):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=10)
    with net:
        wide = nengo.Probe(net.b.neurons, synapse=None)
    sim = make_sim(net)
    x = random_inputs(1, 6, 2)
    # 60 output rows (6 steps x 10 neurons) against 2 tied input columns: forward
    tied = sim.jacobian(wide, net.stim, x, tied=True)
    assert sim.jacobian_info["engine"] == "forward"
    assert (
        max_rel_error(tied, sim.jacobian(wide, net.stim, x, method="reverse").sum(3))
        < 1e-5
    )
    # 12 output rows against 12 input columns: reverse, and for so small a pass
    # (per-operator overhead dominates) compiled by XLA
    small = sim.jacobian(net.probe, net.stim, x)
    assert sim.jacobian_info["engine"] == "reverse (XLA)"
    assert sim.jacobian_info["jit_compile"] is True
    loop = sim.jacobian(net.probe, net.stim, x, method="loop")
    assert max_rel_error(small, loop) < 1e-5
    # weights go backwards; XLA only for small passes (here 60 lanes, 10 neurons)
    sim.jacobian(wide, net.c_ab, x)
    assert sim.jacobian_info["engine"] == "reverse (XLA)"


def test_auto_uses_xla_only_where_it_pays(make_sim):
    """The modelled work per step decides, against XLA_BREAK_EVEN."""
    from nengo_jacobian.engines import reverse
    from nengo_jacobian.request import build_request

    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=10)
    sim = make_sim(net)
    for wrt in (net.stim, [net.stim, net.c_ab]):
        request, *_ = build_request(sim, net.probe, wrt, None, 6)
        step_overhead, lane_cost = reverse._pass_costs(request)
        below = int(np.ceil(reverse.XLA_BREAK_EVEN * step_overhead / lane_cost)) - 1
        assert reverse.xla_pays(request, below)
        assert not reverse.xla_pays(request, below + 1)


def _python_node_net():
    with nengo.Network(seed=0) as net:
        nengo_dl.configure_settings(dtype="float64")  # for finite differences
        stim = nengo.Node([0.0, 0.0], label="stim")
        square = nengo.Node(lambda t, x: x**2, size_in=2, label="square")
        ens = nengo.Ensemble(10, 2, label="ens")
        nengo.Connection(stim, square, synapse=None)
        nengo.Connection(square, ens)
        probe = nengo.Probe(ens, label="probe")
    return net, ens, probe


def test_xla_is_not_used_for_networks_with_numpy_code(make_sim):
    """A Python-function Node anywhere stops XLA: auto runs without, and says why."""
    net, ens, probe = _python_node_net()
    sim = make_sim(net)
    hidden = nengo_jacobian.Hidden(ens)
    jac = sim.jacobian(probe, hidden, n_steps=3)
    assert sim.jacobian_info["engine"] == "reverse"
    fd = sim.jacobian(probe, hidden, n_steps=3, method="finite_difference")
    assert max_rel_error(jac, fd) < 1e-6  # float64
    with pytest.raises(
        nengo_jacobian.JacobianError,
        match=r"XLA cannot compile this network: Node square runs outside TensorFlow "
        r"\(it runs a Python function\)\. Use method='reverse'",
    ):
        sim.jacobian(probe, hidden, n_steps=3, method="reverse_xla")


def test_auto_falls_back_when_xla_refuses(make_sim, monkeypatch):
    """An operator XLA refuses that was not foreseen: auto runs without XLA."""
    from nengo_jacobian import pullback
    from nengo_jacobian.engines import reverse

    monkeypatch.setattr(reverse, "xla_blockers", lambda sim: [])
    asked = []  # the jit_compile of every program the engine asks for

    def compiled(sim, plan, method, jit_compile=False):
        asked.append(jit_compile)
        return pullback.compiled(sim, plan, method, jit_compile)

    monkeypatch.setattr(reverse, "compiled", compiled)
    net, ens, probe = _python_node_net()
    sim = make_sim(net)
    hidden = nengo_jacobian.Hidden(ens)
    fd = sim.jacobian(probe, hidden, n_steps=3, method="finite_difference")
    for _ in range(2):  # the second call does not try XLA again
        jac = sim.jacobian(probe, hidden, n_steps=3)
        assert sim.jacobian_info["engine"] == "reverse"
        assert "PyFunc" in sim.jacobian_info["xla_refused"]
        assert max_rel_error(jac, fd) < 1e-6  # float64
    assert asked == [True, False, False]
    with pytest.raises(
        nengo_jacobian.JacobianError,
        match=r"XLA could not compile this request's lane graph \(.*PyFunc",
    ):
        sim.jacobian(
            probe,
            hidden,
            n_steps=3,
            method=reverse.VectorizedReverse(chunk_size=2, jit_compile=True),
        )


def test_xla_compiled_reverse_mode_matches(make_sim):
    """XLA (fixed-size loop) gives the same Jacobians, to float32 rounding."""
    net = two_layer_net(nengo.LIF(), n_neurons=20)
    sim = make_sim(net, minibatch_size=2)
    x = random_inputs(2, 6, 2)
    wrt = [net.stim, net.c_ab, net.c_nn, net.a, net.b.neurons]
    plain = sim.jacobian(net.probe, wrt, x)
    xla = sim.jacobian(net.probe, wrt, x, method="reverse_xla", chunk_size=10)
    assert sim.jacobian_info["engine"] == "reverse (XLA)"
    assert sim.jacobian_info["passes"] == 3  # 2 items x 12 rows in lanes of 10
    for key in wrt:
        assert max_rel_error(xla[key], plain[key]) < 1e-4, key


SHARED_NEURON_TYPES = {
    "LIFRate": nengo.LIFRate(),
    "Tanh": nengo.Tanh(tau_ref=0.002),
    "SpikingRectifiedLinear": nengo.SpikingRectifiedLinear(),
    "RegularSpiking(LIFRate)": nengo.RegularSpiking(nengo.LIFRate()),
    "LIF smoothed (SoftLIFRate)": nengo.LIF(),
}


@pytest.mark.parametrize("neuron_type", list(SHARED_NEURON_TYPES))
def test_shared_nonlinearities_equal_the_loop(make_sim, monkeypatch, neuron_type):
    # Lanes of one item share their neurons' nonlinearity (lanes.share_neurons);
    # every lane still has its own backward pass. 3 items with 24 rows each: 72
    # lanes in 3 slots, interleaved by the causal order. The loop differentiates the
    # user's own graph, where nothing is shared; it has no hidden signals, for which
    # the reference is the same lanes with sharing turned off.
    calls = []
    share = nengo_jacobian.lanes.share_neurons
    monkeypatch.setattr(
        nengo_jacobian.lanes,
        "share_neurons",
        lambda *args: calls.append(args[3].shape) or share(*args),
    )
    net = two_layer_net(SHARED_NEURON_TYPES[neuron_type], n_neurons=20)
    if "smoothed" in neuron_type:
        with net:
            nengo_dl.configure_settings(lif_smoothing=0.05)
    sim = make_sim(net, minibatch_size=3)
    x = random_inputs(3, 4, 2)
    wrt = [net.stim, net.c_ab, net.a, net.b.neurons]
    hidden = nengo_jacobian.Hidden(net.a)
    slow = sim.jacobian(net.probe, wrt, x, method="loop")
    for method in ("reverse", "reverse_xla"):
        calls.clear()
        fast = sim.jacobian(net.probe, wrt + [hidden], x, method=method)
        assert calls, "no nonlinearity was shared"
        for key in wrt:
            assert max_rel_error(fast[key], slow[key]) < 1e-5, (method, key)
    monkeypatch.setattr(nengo_jacobian.pullback.LanePlan, "_slots", lambda *a: None)
    sim._jacobian_cache.clear()
    calls.clear()
    unshared = sim.jacobian(net.probe, hidden, x, method="reverse")
    assert not calls
    assert max_rel_error(fast[hidden], unshared) < 1e-5


@pytest.mark.parametrize("n_items", [1, 3])
def test_taps_are_recorded_once_per_item(make_sim, monkeypatch, n_items):
    # Lanes of one item tap equal values, so a tap keeps one row per item
    # (lanes.Taps): one row contracts as a single matrix product, several are
    # gathered per lane. The loop, which shares nothing, is the reference.
    rows = []
    run = nengo_jacobian.lanes.LaneGraph.run

    def spy(self, *args, **kwargs):
        probes, taps = run(self, *args, **kwargs)
        rows.extend(value.shape[0] for value in taps.values)
        return probes, taps

    monkeypatch.setattr(nengo_jacobian.lanes.LaneGraph, "run", spy)
    net = two_layer_net(nengo.LIF(), n_neurons=20)
    sim = make_sim(net, minibatch_size=n_items)
    x = random_inputs(n_items, 4, 2)
    # connection weights tap neuron outputs, encoders the decoded input
    wrt = [net.c_ab, net.a]
    slow = sim.jacobian(net.probe, wrt, x, method="loop")
    for method in ("reverse", "reverse_xla"):
        rows.clear()
        fast = sim.jacobian(net.probe, wrt, x, method=method)
        assert rows and set(rows) == {n_items}, (method, rows)
        for key in wrt:
            assert max_rel_error(fast[key], slow[key]) < 1e-5, (method, key)


def test_numpy_neurons_share_nothing(make_sim, monkeypatch):
    # NengoDL runs neuron types without a TensorFlow implementation in numpy, once per
    # minibatch item; lanes do not share anything then. Here an AdaptiveLIF ensemble
    # off the differentiated path.
    calls = []
    monkeypatch.setattr(
        nengo_jacobian.lanes, "share_neurons", lambda *args: calls.append(args)
    )
    net = two_layer_net(nengo.LIF(), n_neurons=10)
    with net:
        side = nengo.Ensemble(5, 1, neuron_type=nengo.AdaptiveLIF(), label="side")
        nengo.Connection(net.stim[0], side, synapse=None)
    sim = make_sim(net)
    x = random_inputs(1, 4, 2)
    fast = sim.jacobian(net.probe, net.stim, x, method="reverse")
    (lanes,) = [v for k, v in sim._jacobian_cache.items() if k[0] == "lanes"]
    assert not lanes.shareable and not calls
    slow = sim.jacobian(net.probe, net.stim, x, method="loop")
    assert max_rel_error(fast, slow) < 1e-5


def test_numpy_noise_is_left_to_the_loop(make_sim):
    # Ensemble noise runs in numpy with a random generator per minibatch item, which
    # lanes cannot replay: lane engines refuse by name, auto uses the loop.
    net = two_layer_net(nengo.LIF(), n_neurons=10)
    with net:
        net.a.noise = nengo.processes.WhiteNoise(seed=3)
    sim = make_sim(net)
    x = random_inputs(1, 4, 2)
    for method in ("reverse", "forward", "finite_difference"):
        with pytest.raises(nengo_jacobian.JacobianError, match="Ensemble a: its noise"):
            sim.jacobian(net.probe, net.stim, x, method=method)
    with pytest.raises(nengo_jacobian.JacobianError, match="method='loop'"):
        sim.vjp(net.probe, net.stim, np.ones((1, 4, 2)), x)
    auto = sim.jacobian(net.probe, net.stim, x)
    assert sim.jacobian_info["engine"] == "loop"
    assert auto.shape == (1, 4, 2, 4, 2) and np.all(np.isfinite(auto))
