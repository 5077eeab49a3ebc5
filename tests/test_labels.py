"""Labelled weights: every entry is the right slice of NengoDL's merged variables."""

import subprocess
import sys
import textwrap

import nengo
import nengo_dl
import numpy as np
import pytest
from nengo.exceptions import SimulatorClosed
from nengo_dl import graph_optimizer as go

import nengo_jacobian
from nengo_jacobian import NoWeightsError, UnknownObjectError, WeightFileError

PLANNERS = {
    "tree": go.tree_planner,
    "greedy": go.greedy_planner,
    "transitive": go.transitive_planner,
    "noop": go.noop_planner,
}


def merged_net(planner=None, sorter=None, seed=0):
    """Three same-size ensembles and five connections, so NengoDL merges variables."""
    with nengo.Network(seed=seed) as net:
        if planner is not None or sorter is not None:
            nengo_dl.configure_settings(
                **({"planner": planner} if planner else {}),
                **({"sorter": sorter} if sorter else {}),
            )
        net.stim = nengo.Node(np.zeros(2), label="stim")
        net.ens = [
            nengo.Ensemble(20, 2, neuron_type=nengo.LIF(), label=name) for name in "abc"
        ]
        a, b, c = net.ens
        net.conns = [
            nengo.Connection(net.stim, a, transform=np.eye(2), synapse=None),
            nengo.Connection(a, b, synapse=0.005),
            nengo.Connection(a, c, synapse=0.005),
            nengo.Connection(b.neurons, c.neurons, transform=np.ones((20, 20)) * 1e-3),
            nengo.Connection(c, a, transform=-0.5, label="feedback"),
        ]
        net.probe = nengo.Probe(c, label="out")
    return net


def sim_data_value(sim, entry):
    data = sim.data[entry.obj.ensemble if entry.attr == "bias" else entry.obj]
    return {
        "scaled_encoders": lambda: data.scaled_encoders,
        "bias": lambda: data.bias,
        "weights": lambda: data.weights,
    }[entry.attr]()


def scramble(sim, seed=0):
    """Give every variable distinct random values so that any mix-up shows."""
    rng = np.random.RandomState(seed)
    for var in sim.tensor_graph.base_params.values():
        var.assign(rng.normal(size=var.shape).astype(var.dtype.as_numpy_dtype))


@pytest.mark.parametrize("planner", list(PLANNERS))
@pytest.mark.filterwarnings("ignore:Non-finite values:UserWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_labels_equal_sim_data_under_every_planner(make_sim, planner):
    net = merged_net(PLANNERS[planner])
    sim = make_sim(net)
    scramble(sim)
    entries = list(sim.weights)
    assert len(entries) == 3 * 2 + 5
    if planner != "noop":
        # the point of the test: several weights share one variable
        assert len({id(e.variable) for e in entries}) < len(entries)
    for entry in entries:
        np.testing.assert_array_equal(entry.read(), sim_data_value(sim, entry))


def test_lookups_and_names(make_sim):
    net = merged_net()
    sim = make_sim(net)
    a, b, c = net.ens
    assert sim.weights[a] is sim.weights[a, "scaled_encoders"]
    assert sim.weights[a, "encoders"] is sim.weights[a]  # Nengo's build key
    assert sim.weights[a.neurons].attr == "bias"
    assert sim.weights[net.conns[1]].name == "a->b.weights"
    assert sim.weights["feedback.weights"].obj is net.conns[4]
    assert sim.weights["connections[2]:weights"].obj is net.conns[2]
    assert sim.weights["a.scaled_encoders"].shape == (20, 2)
    assert sim.weights[net.conns[3]].shape == (20, 20)
    assert net.conns[1] in sim.weights and net.probe not in sim.weights
    assert [e.name for e in sim.weights] == sim.weights.names
    assert "a.neurons.bias" in repr(sim.weights)
    for entry in sim.weights:
        assert entry.trainable
        assert entry.variable in sim.keras_model.trainable_weights


def test_assign_writes_only_its_rows(make_sim):
    net = merged_net(go.greedy_planner)
    sim = make_sim(net)
    before = {e.name: e.read() for e in sim.weights}
    target = sim.weights[net.conns[2]]
    new = np.arange(target.size, dtype=np.float32).reshape(target.shape)
    target.assign(new)
    np.testing.assert_array_equal(sim.data[net.conns[2]].weights, new)
    for e in sim.weights:
        if e is not target:
            np.testing.assert_array_equal(e.read(), before[e.name])
    with pytest.raises(WeightFileError, match=r"a->c.weights: expected .*\(2, 20\)"):
        target.assign(np.zeros((20, 2)))


def test_take_cuts_a_variable_gradient(make_sim):
    sim = make_sim(merged_net())
    entry = sim.weights["a->c.weights"]
    grad = np.random.RandomState(0).normal(size=(3,) + tuple(entry.variable.shape))
    np.testing.assert_array_equal(
        entry.take(grad), grad[:, entry.rows].reshape((3,) + entry.shape)
    )


def test_non_trainable_weights_are_labelled(make_sim):
    # with NengoDL's default simplifications this identity transform would be
    # removed from the graph; the adapter keeps it
    with nengo.Network(seed=0) as net:
        nengo_dl.configure_settings(trainable=None)
        stim = nengo.Node([0.0, 0.0])
        ens = nengo.Ensemble(10, 2)
        conn = nengo.Connection(stim, ens, transform=np.eye(2))
        net.config[conn].trainable = False
    sim = make_sim(net)
    entry = sim.weights[conn]
    assert not entry.trainable
    np.testing.assert_array_equal(entry.read(), np.eye(2))


def test_user_network_config_is_unchanged(make_sim):
    plain = merged_net()
    assert nengo.Network not in plain.config.params
    make_sim(plain)
    # NengoDL itself caches per-object config entries while it builds; the settings
    # (parameters of Network) are what we must leave alone
    assert nengo.Network not in plain.config.params

    configured = merged_net(go.greedy_planner)
    with configured:
        nengo_dl.configure_settings(simplifications=[go.remove_zero_incs])
    make_sim(configured)
    assert configured.config[configured].simplifications == [go.remove_zero_incs]
    # and a plain nengo_dl.Simulator still applies the user's setting
    assert set(configured.config[nengo.Network].extra_params) == {
        "planner",
        "simplifications",
    }


def test_save_load_by_object(make_sim, tmp_path):
    source = make_sim(merged_net(go.greedy_planner))
    scramble(source, seed=1)
    source.weights.save(tmp_path / "weights.npz")
    # a differently merged build of the same model code
    target_net = merged_net(go.noop_planner)
    target = make_sim(target_net)
    target.weights.load(tmp_path / "weights.npz")
    for a, b in zip(source.weights, target.weights):
        assert a.name == b.name
        np.testing.assert_array_equal(a.read(), b.read())


def test_load_rejects_another_network(make_sim, tmp_path):
    make_sim(merged_net()).weights.save(tmp_path / "w.npz")
    with nengo.Network(seed=0) as other:
        x = nengo.Ensemble(20, 2, label="x")
        nengo.Connection(x, x)
    sim = make_sim(other)
    before = sim.weights[x].read()
    with pytest.raises(WeightFileError, match=r"holds Ensemble 'a' in the file but"):
        sim.weights.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(sim.weights[x].read(), before)  # nothing written


@pytest.mark.slow
def test_save_load_across_processes(tmp_path):
    # NengoDL's own save_params is positional; with greedy_planner the merge order
    # changes between processes and weights get swapped. Ours are matched by object.
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, nengo_jacobian
        from nengo_dl import graph_optimizer as go
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from test_labels import merged_net
        net = merged_net(go.greedy_planner, go.noop_order_signals)
        with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
            if sys.argv[1] == "save":
                for i, e in enumerate(sim.weights):
                    e.assign(np.full(e.shape, i, dtype=np.float32))
                sim.weights.save(sys.argv[2])
            else:
                sim.weights.load(sys.argv[2])
                for i, e in enumerate(sim.weights):
                    assert np.all(e.read() == i), e.name
                print("ok")
        """
    )
    path = str(tmp_path / "w.npz")
    for step in ("save", "load", "load"):
        out = subprocess.run(
            [sys.executable, "-c", script, step, path],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]


def test_lookup_errors(make_sim):
    net = merged_net()
    sim = make_sim(net)
    a = net.ens[0]
    with nengo.Network():
        stranger = nengo.Ensemble(5, 1, label="stranger")
    with pytest.raises(UnknownObjectError, match=r"stranger is not part of .*'a\."):
        sim.weights[stranger]
    with pytest.raises(UnknownObjectError, match=r"No weight is named 'nope'"):
        sim.weights["nope"]
    with pytest.raises(NoWeightsError, match=r"Node, which has no weights"):
        sim.weights[net.stim]
    with pytest.raises(
        NoWeightsError, match=r"has no weight 'gain'.*'scaled_encoders'"
    ):
        sim.weights[a, "gain"]
    with pytest.raises(NoWeightsError, match=r"a\[:1\]: weights belong to the whole"):
        sim.weights[a[:1]]


def test_connection_without_weights(make_sim):
    with nengo.Network() as net:
        stim = nengo.Node([0.0])
        ens = nengo.Ensemble(10, 1, label="ens")
        conn = nengo.Connection(stim, ens)  # transform=None: no weights
        probe = nengo.Probe(ens)
    sim = make_sim(net)
    message = r"Connection Node@nodes\[0\]->ens has no weights: .*explicit transform"
    with pytest.raises(NoWeightsError, match=message):
        sim.weights[conn]
    with pytest.raises(NoWeightsError, match=message):
        sim.jacobian(probe, conn, n_steps=1)


def test_closed_simulator(make_sim):
    sim = make_sim(merged_net())
    sim.close()
    with pytest.raises(SimulatorClosed, match="weights"):
        sim.weights  # noqa: B018
    assert isinstance(nengo_jacobian.WeightTable, type)


@pytest.mark.parametrize("planner", list(PLANNERS))
def test_jacobians_under_every_planner(make_sim, planner):
    # the lane graph is planned anew; its layout must still map to the user's rows
    net = merged_net(PLANNERS[planner])
    sim = make_sim(net)
    x = np.random.RandomState(0).uniform(-0.5, 0.5, (1, 4, 2))
    wrt = [net.stim, *net.conns, net.ens[1], net.ens[2].neurons]
    fast = sim.jacobian(net.probe, wrt, x)
    slow = sim.jacobian(net.probe, wrt, x, method="loop")
    for key in wrt:
        scale = np.max(np.abs(slow[key]))
        assert scale > 0
        assert np.max(np.abs(fast[key] - slow[key])) / scale < 1e-5, key
