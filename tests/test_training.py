"""Custom learning loops: labelled gradients, optimizer steps, Jacobian losses."""

import nengo
import nengo_dl
import numpy as np
import pytest
import tensorflow as tf
from conftest import max_rel_error, two_layer_net

import nengo_jacobian
from nengo_jacobian import Hidden, JacobianError, losses


def random_inputs(n_items, n_steps, dims, seed=1, scale=0.8):
    return np.random.RandomState(seed).uniform(-scale, scale, (n_items, n_steps, dims))


def test_train_step_matches_sim_fit(make_sim):
    # the same loss and optimizer through nengo_dl's own fit and through our step
    net = two_layer_net(nengo.LIF(), n_neurons=20)
    x = random_inputs(2, 8, 2)
    y = random_inputs(2, 8, 2, seed=2, scale=0.3)
    theirs = make_sim(net, minibatch_size=2)
    theirs.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss={net.probe: "mse"})
    theirs.fit({net.stim: x}, {net.probe: y}, epochs=3, verbose=0)

    ours = make_sim(net, minibatch_size=2)
    target = tf.constant(y, tf.float32)

    def loss_fn(run):
        return tf.reduce_mean(tf.square(run[net.probe] - target))

    optimizer = tf.keras.optimizers.Adam(1e-2)
    losses_seen = [ours.train_step(loss_fn, optimizer, x) for _ in range(3)]
    assert len(set(losses_seen)) == 3  # the weights did move
    for mine, reference in zip(ours.weights, theirs.weights):
        assert mine.name == reference.name
        assert max_rel_error(mine.read(), reference.read()) < 1e-5, mine.name
    # and the trained values are what NengoDL itself reports
    trained = ours.weights[net.c_ab].read()
    np.testing.assert_array_equal(ours.data[net.c_ab].weights, trained)
    params = ours.get_nengo_params(net.c_ab)
    np.testing.assert_array_equal(params["solver"].values.T, trained)
    np.testing.assert_array_equal(
        ours.data[net.b].bias, ours.weights[net.b.neurons].read()
    )


def test_gradients_are_labelled_and_match_the_weight_jacobian(make_sim):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=15)
    sim = make_sim(net)
    x = random_inputs(1, 5, 2)
    weights = np.random.RandomState(4).normal(size=(1, 5, 2))

    def loss_fn(run):
        return tf.reduce_sum(run[net.probe] * weights)

    loss, grads = sim.gradients(loss_fn, x, wrt=[net.c_ab, net.a])
    assert set(grads) == {net.c_ab, net.a}
    assert loss == pytest.approx(np.sum(sim.predict(x)[net.probe] * weights), rel=1e-5)
    jac = sim.jacobian(net.probe, [net.c_ab, net.a], x)
    for key in grads:
        expected = np.tensordot(weights, jac[key], axes=3)
        assert max_rel_error(grads[key], expected) < 1e-5


@pytest.mark.parametrize(
    "optimizer",
    [
        tf.keras.optimizers.SGD,
        tf.keras.optimizers.Adam,
        tf.keras.optimizers.RMSprop,
        tf.keras.optimizers.Adagrad,
    ],
)
def test_train_step_moves_only_chosen_rows(make_sim, optimizer):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=15)
    sim = make_sim(net)
    chosen, other = sim.weights[net.c_ab], sim.weights[net.c_rec]
    assert chosen.variable is other.variable  # merged by NengoDL
    before = {e.name: e.read() for e in sim.weights}

    def loss_fn(run):
        return tf.reduce_sum(tf.square(run[net.probe]))

    sim.train_step(loss_fn, optimizer(0.1), random_inputs(1, 5, 2), wrt=net.c_ab)
    for e in sim.weights:
        if e is chosen:
            assert np.max(np.abs(e.read() - before[e.name])) > 1e-3
        else:
            np.testing.assert_array_equal(e.read(), before[e.name], err_msg=e.name)


def test_sgd_on_weight_jacobian_is_pes(make_sim):
    # one SGD step on J^T e for a decoded connection equals Nengo's PES update
    n_neurons, kappa, dt = 20, 1e-3, 0.001
    stim_value = [0.3]
    error = np.array([0.5, -0.2])

    def network(learning):
        with nengo.Network(seed=3) as net:
            # float64, like core Nengo, so the tiny PES step is not lost to rounding
            nengo_dl.configure_settings(dtype="float64")
            stim = nengo.Node(stim_value)
            pre = nengo.Ensemble(n_neurons, 1, neuron_type=nengo.LIFRate(), seed=7)
            post = nengo.Node(size_in=2)
            nengo.Connection(stim, pre, synapse=None)
            conn = nengo.Connection(
                pre,
                post,
                function=lambda x: [x[0], -x[0]],
                synapse=None,
                seed=11,
                learning_rule_type=(
                    nengo.PES(learning_rate=kappa, pre_synapse=None)
                    if learning
                    else None
                ),
            )
            probe = nengo.Probe(post, synapse=None)
            if learning:
                err = nengo.Node(error)
                nengo.Connection(err, conn.learning_rule, synapse=None)
        return net, conn, probe

    net, conn, _ = network(learning=True)
    with nengo.Simulator(net, progress_bar=False) as core:
        # Nengo applies the delta computed in one step during the next one
        core.run_steps(1)
        before = core.signals[core.model.sig[conn]["weights"]].copy()
        core.run_steps(1)
        pes_delta = core.signals[core.model.sig[conn]["weights"]] - before
    assert np.max(np.abs(pes_delta)) > 0

    net, conn, probe = network(learning=False)
    sim = make_sim(net)
    jac = sim.jacobian(probe, conn, n_steps=1)[0, 0]  # (2, 2, n_neurons)
    grad = np.einsum("i,ijk->jk", error, jac)  # J^T e
    start = sim.weights[conn].read()
    optimizer = tf.keras.optimizers.SGD(kappa * dt / n_neurons)

    def loss_fn(run):
        # d/dW of <e, y> is J^T e: the same gradient, through the training path
        return tf.reduce_sum(run[probe][:, 0] * error)

    sim.train_step(loss_fn, optimizer, n_steps=1, wrt=conn)
    np.testing.assert_allclose(
        sim.weights[conn].read() - start,
        -grad * kappa * dt / n_neurons,
        rtol=1e-5,
        atol=1e-12,
    )
    np.testing.assert_allclose(sim.weights[conn].read() - start, pes_delta, rtol=1e-5)


@pytest.mark.parametrize("shared_products", [True, False])
def test_second_order_gradients_match_finite_differences(
    make_sim, monkeypatch, shared_products
):
    # with lanes.share_linear on every product (its gradient w.r.t. the weight is
    # what second derivatives flow through) and with none
    calls = []
    share = nengo_jacobian.lanes.share_linear
    monkeypatch.setattr(
        nengo_jacobian.lanes,
        "share_linear",
        lambda *args: calls.append(1) or share(*args),
    )
    monkeypatch.setattr(
        nengo_jacobian.lanes, "SHARE_PRODUCTS_FROM", 1 if shared_products else 10**9
    )
    net = two_layer_net(nengo.Sigmoid(tau_ref=0.002), n_neurons=12, dtype="float64")
    sim = make_sim(net)
    x = random_inputs(1, 6, 2, scale=0.5)

    def loss_fn(run):
        return losses.identity_penalty(run, net.probe, Hidden(net.a))

    wrt = [net.c_ab, net.a, net.b.neurons]
    loss, grads = sim.gradients(loss_fn, x, wrt=wrt)
    assert loss > 0
    assert bool(calls) == shared_products
    rng = np.random.RandomState(0)
    h = 1e-5
    for key in wrt:
        entry = sim.weights[key]
        original = entry.read()
        for flat in rng.choice(entry.size, size=3, replace=False):
            values = []
            for sign in (1, -1):
                w = original.copy().ravel()
                w[flat] += sign * h
                entry.assign(w.reshape(entry.shape))
                values.append(sim.gradients(loss_fn, x, wrt=wrt)[0])
            entry.assign(original)
            fd = (values[0] - values[1]) / (2 * h)
            analytic = grads[key].ravel()[flat]
            assert abs(analytic - fd) <= 1e-4 * max(abs(fd), 1e-3), (entry.name, flat)


@pytest.mark.slow
def test_run_jacobian_and_vjp_equal_sim_jacobian(make_sim):
    net = two_layer_net(nengo.LIF(), n_neurons=15)
    sim = make_sim(net, minibatch_size=2)
    x = random_inputs(2, 5, 2)
    full = sim.jacobian(net.probe, [net.stim, net.c_ab], x)
    rng = np.random.RandomState(1)
    w_in = rng.normal(size=full[net.stim].shape)
    w_ab = rng.normal(size=full[net.c_ab].shape)
    v = rng.normal(size=(2, 3, 5, 2)).astype(np.float32)

    def loss_fn(run):
        return (
            tf.reduce_sum(run.jacobian(net.probe, net.stim) * w_in)
            + tf.reduce_sum(run.jacobian(net.probe, net.c_ab) * w_ab)
            + tf.reduce_sum(run.vjp(net.probe, net.stim, v))
        )

    loss, _ = sim.gradients(loss_fn, x, wrt=[])  # the value only
    expected = (
        np.sum(full[net.stim] * w_in)
        + np.sum(full[net.c_ab] * w_ab)
        + np.einsum("bktd,btdse->", v, full[net.stim])
    )
    assert loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["projection", "hutchinson"])
@pytest.mark.parametrize("penalty", [losses.identity_penalty, losses.frobenius_penalty])
def test_estimators_are_unbiased(make_sim, penalty, estimator):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=15, dims=3)
    sim = make_sim(net)
    x = random_inputs(1, 6, 3)
    exact, _ = sim.gradients(
        lambda run: penalty(run, net.probe, Hidden(net.a)), x, wrt=[]
    )

    def estimates(n_projections, draws):
        generator = tf.random.Generator.from_seed(n_projections)

        def loss_fn(run):
            return penalty(
                run,
                net.probe,
                Hidden(net.a),
                n_projections=n_projections,
                estimator=estimator,
                generator=generator,
            )

        return np.array([sim.gradients(loss_fn, x, wrt=[])[0] for _ in range(draws)])

    one = estimates(1, 200)
    four = estimates(4, 200)
    for sample in (one, four):
        standard_error = sample.std(ddof=1) / np.sqrt(len(sample))
        assert abs(sample.mean() - exact) < 4 * standard_error, (sample.mean(), exact)
    # each projection is an independent draw: 4 of them cut the variance ~4x
    assert four.var() < one.var() / 2.5


def test_exact_identity_penalty_is_the_matrix_norm(make_sim):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=15)
    sim = make_sim(net)
    x = random_inputs(1, 6, 2)
    jac = sim.jacobian(net.probe, Hidden(net.a), x)[0, -1].sum(axis=1)  # tied, last
    value, _ = sim.gradients(
        lambda run: losses.identity_penalty(run, net.probe, Hidden(net.a)),
        x,
        wrt=net.c_ab,
    )
    assert value == pytest.approx(np.sum((jac - np.eye(2)) ** 2), rel=1e-5)


def test_training_errors(make_sim):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=10)
    sim = make_sim(net)
    with pytest.raises(JacobianError, match="must return a scalar"):
        sim.gradients(lambda run: run[net.probe], n_steps=2)
    with pytest.raises(JacobianError, match="not a weight"):
        sim.gradients(
            lambda run: losses.frobenius_penalty(run, net.probe, net.c_ab), n_steps=2
        )
    with pytest.raises(JacobianError, match="square Jacobian"):
        sim.gradients(
            lambda run: losses.identity_penalty(run, net.probe, Hidden(net.a.neurons)),
            n_steps=2,
        )
    assert isinstance(sim, nengo_jacobian.Simulator)
    assert nengo_dl.Simulator in type(sim).__mro__


def test_jacobian_loss_is_traced_once(make_sim):
    """The lane graphs a Jacobian loss builds inside its first trace create NengoDL
    variables; that must not make tf.function trace the training step twice (it
    doubled the first call)."""
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=10, seed=1)
    sim = make_sim(net)
    x = np.full((1, 3, 2), 0.3)
    traces = []

    def loss_fn(run):
        traces.append(1)
        return losses.identity_penalty(run, net.probe, Hidden(net.a))

    optimizer = tf.keras.optimizers.SGD(1e-9)
    for _ in range(2):
        sim.train_step(loss_fn, optimizer, x, wrt=net.c_ab)
    assert len(traces) == 1


def test_bound_method_losses_are_traced_once_and_outputs_match(make_sim, monkeypatch):
    """A loss given as obj.method (a new object per access) reuses its trace."""
    import warnings

    net = two_layer_net(n_neurons=10, seed=1)
    sim = make_sim(net)
    x = np.full((1, 3, 2), 0.3)

    class Learner:
        def loss(self, run):
            return tf.reduce_sum(tf.square(run[net.probe]))

    learner = Learner()
    optimizer = tf.keras.optimizers.SGD(1e-9)
    expected = sim.rate_outputs(net.probe, x)
    for _ in range(3):
        loss, outputs = sim.train_step(
            learner.loss, optimizer, x, wrt=net.c_ab, outputs=[net.probe]
        )
    steps = [k for k in sim._jacobian_cache if k[0] == "step"]
    assert len(steps) == 1
    np.testing.assert_allclose(outputs[net.probe], expected, rtol=1e-5, atol=1e-7)
    assert np.isclose(loss, np.sum(np.square(outputs[net.probe])), rtol=1e-5)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monkeypatch.setattr(nengo_jacobian.training, "MANY_STEP_FUNCTIONS", 3)
        for _ in range(3):  # a new lambda per step: retraced every time
            sim.gradients(lambda run: tf.reduce_sum(run[net.probe]), x, wrt=[])
    assert any(
        "different training steps have been traced" in str(w.message) for w in caught
    )
