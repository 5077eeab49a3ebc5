"""Bad requests get one clear error naming the object, the rule and the way out."""

import nengo
import nengo_dl
import numpy as np
import pytest
from conftest import two_layer_net

from nengo_jacobian import (
    DataError,
    InferenceModeError,
    JacobianError,
    NonFiniteJacobianError,
    NotDifferentiableError,
    UnknownObjectError,
)


@pytest.fixture
def net_sim(make_sim):
    net = two_layer_net(nengo.RectifiedLinear(), n_neurons=10)
    return net, make_sim(net, minibatch_size=2)


def test_probe_of_another_network(net_sim):
    net, sim = net_sim
    with nengo.Network():
        stray = nengo.Probe(nengo.Node([0]), label="stray")
    with pytest.raises(
        UnknownObjectError, match=r"Probe stray is not a probe of .*'out'"
    ):
        sim.jacobian(stray, net.stim, n_steps=2)


def test_node_of_another_network(net_sim):
    net, sim = net_sim
    with nengo.Network():
        other = nengo.Node([0], label="other")
    with pytest.raises(UnknownObjectError, match=r"Node other is not part of .*'stim'"):
        sim.jacobian(net.probe, other, n_steps=2)


def test_node_that_is_not_an_input(make_sim):
    with nengo.Network() as net:
        stim = nengo.Node([0.0], label="stim")
        relay = nengo.Node(size_in=1, label="relay")
        nengo.Connection(stim, relay)
        probe = nengo.Probe(relay)
    sim = make_sim(net)
    with pytest.raises(
        JacobianError, match=r"Node relay is not an input Node \(size_in=1\)"
    ):
        sim.jacobian(probe, relay, n_steps=2)


def test_python_node_on_the_path(make_sim):
    with nengo.Network() as net:
        stim = nengo.Node([0.0, 0.0], label="stim")
        square = nengo.Node(lambda t, x: x**2, size_in=2, label="square")
        ens = nengo.Ensemble(10, 2, label="ens")
        nengo.Connection(stim, square, synapse=None)
        conn = nengo.Connection(square, ens)
        probe = nengo.Probe(ens)
        side = nengo.Probe(stim)
    sim = make_sim(net)
    with pytest.raises(
        NotDifferentiableError,
        match=r"Node square lies between stim and Probe .*Python function.*TensorNode",
    ):
        sim.jacobian(probe, stim, n_steps=3)
    # downstream of the Python node everything is differentiable
    assert sim.jacobian(probe, ens, n_steps=3).shape == (1, 3, 2, 10, 2)
    assert sim.jacobian(side, stim, n_steps=3).shape == (1, 3, 2, 3, 2)
    del conn


def test_connection_function_on_a_node(make_sim):
    with nengo.Network() as net:
        stim = nengo.Node([0.0], label="stim")
        ens = nengo.Ensemble(10, 1, label="ens")
        nengo.Connection(stim, ens, function=np.sin, synapse=None)
        probe = nengo.Probe(ens)
    sim = make_sim(net)
    with pytest.raises(
        NotDifferentiableError, match=r"Connection stim->ens lies between"
    ):
        sim.jacobian(probe, stim, n_steps=2)


def test_direct_mode_ensemble(make_sim):
    with nengo.Network() as net:
        stim = nengo.Node([0.0], label="stim")
        direct = nengo.Ensemble(1, 1, neuron_type=nengo.Direct(), label="direct")
        nengo.Connection(stim, direct, synapse=None)
        probe = nengo.Probe(direct)
    sim = make_sim(net)
    with pytest.raises(NotDifferentiableError, match=r"Ensemble direct .*Direct-mode"):
        sim.jacobian(probe, stim, n_steps=2)


@pytest.mark.parametrize(
    "data, match",
    [
        (
            np.zeros((2, 3, 5)),
            r"Node stim has shape \(2, 3, 5\); it must be \(n_items, n_steps, 2\)",
        ),
        (np.zeros((3, 3, 2)), r"3 items but .*minibatch_size=2: give a multiple of 2"),
        (np.zeros((2, 3)), r"shape \(2, 3\)"),
        ({"nope": np.zeros((2, 3, 2))}, r"'nope', which is not an input Node .*'stim'"),
        (np.full((2, 3, 2), np.nan), r"Node stim contains NaN"),
        ("abc", r"must be a dict .* got str"),
    ],
)
def test_bad_data(net_sim, data, match):
    net, sim = net_sim
    with pytest.raises(
        DataError if "nope" not in str(data) else UnknownObjectError, match=match
    ):
        sim.jacobian(net.probe, net.stim, data)


def test_steps_disagree(net_sim):
    net, sim = net_sim
    with pytest.raises(
        DataError, match=r"n_steps=4 but the `data` arrays have 3 steps"
    ):
        sim.jacobian(net.probe, net.stim, np.zeros((2, 3, 2)), n_steps=4)
    with pytest.raises(DataError, match=r"Give `n_steps` or `data`"):
        sim.jacobian(net.probe, net.stim)


def test_inference_only_spiking(make_sim):
    net = two_layer_net(nengo.LIF(), n_neurons=10)
    with net:
        nengo_dl.configure_settings(inference_only=True)
    sim = make_sim(net)
    with pytest.raises(
        InferenceModeError, match=r"inference_only=True.*Ensemble a .*zero"
    ):
        sim.jacobian(net.probe, net.stim, n_steps=2)


def test_learning_phase_false_spiking(make_sim):
    net = two_layer_net(nengo.LIF(), n_neurons=10, learning_phase=False)
    sim = make_sim(net)
    with pytest.raises(InferenceModeError, match=r"learning_phase=False.*Ensemble a"):
        sim.jacobian(net.probe, net.stim, n_steps=2)


@pytest.mark.parametrize("method", ["auto", "reverse", "reverse_xla", "loop"])
def test_non_finite_result(net_sim, method):
    """A diverged simulation is reported, whatever the compiler does with NaN.

    XLA's ReLU gradient is a select, which turns NaN into zeros: without a check of
    the forward pass, XLA would return an all-zero Jacobian here.
    """
    net, sim = net_sim
    entry = sim.weights[net.c_rec]
    entry.assign(np.full(entry.shape, np.nan))
    message = (
        r"Probe out w.r.t. stim has \d+ NaN"
        if method == "loop"
        else r"Probe out w.r.t. stim is undefined: the simulation's outputs are NaN "
        r"or infinite for item\(s\) \[0, 1\]"
    )
    with pytest.raises(NonFiniteJacobianError, match=message):
        sim.jacobian(net.probe, net.stim, n_steps=3, method=method)


def test_misc_request_errors(net_sim):
    net, sim = net_sim
    with pytest.raises(JacobianError, match=r"Unknown method 'fast'.*'auto'"):
        sim.jacobian(net.probe, net.stim, n_steps=2, method="fast")
    with pytest.raises(JacobianError, match=r"Probe out was given as `wrt`"):
        sim.jacobian(net.probe, net.probe, n_steps=2)
    with pytest.raises(JacobianError, match=r"`of` is empty"):
        sim.jacobian([], net.stim, n_steps=2)
    with pytest.raises(DataError, match=r"n_steps must be at least 1"):
        sim.jacobian(net.probe, net.stim, n_steps=0)
