"""Shared fixtures and small networks with known Jacobians."""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Before nengo_dl: on TensorFlow >= 2.13 NengoDL 3.6.0 imports only after this.
from nengo_jacobian import _compat  # noqa: E402

_compat.install()

import nengo  # noqa: E402
import nengo_dl  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import nengo_jacobian  # noqa: E402

warnings.filterwarnings("ignore", message="No GPU support detected")


@pytest.fixture
def make_sim():
    """Build nengo_jacobian Simulators and close them after the test."""
    sims = []

    def make(net, **kwargs):
        kwargs.setdefault("progress_bar", False)
        sim = nengo_jacobian.Simulator(net, **kwargs)
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.close()


def two_layer_net(
    neuron_type=None,
    n_neurons=30,
    dims=2,
    seed=0,
    dtype=None,
    synapse=0.005,
    probe_synapse=0.01,
    learning_phase=None,
):
    """input Node -> a -> b (decoded) + a.neurons -> b.neurons + b -> b, probe on b.

    Five kinds of weight: Node->Ensemble transform, decoded, neuron->neuron,
    recurrent decoded, encoders and biases.
    """
    neuron_type = nengo.LIF() if neuron_type is None else neuron_type
    ens_kwargs = {"neuron_type": neuron_type}
    if isinstance(neuron_type, nengo.Sigmoid):
        # Sigmoid gains are positive only for max rates above half of 1/tau_ref
        ens_kwargs["max_rates"] = nengo.dists.Uniform(
            0.6 / neuron_type.tau_ref, 0.9 / neuron_type.tau_ref
        )
    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        settings = {}
        if dtype is not None:
            settings["dtype"] = dtype
        if learning_phase is not None:
            settings["learning_phase"] = learning_phase
        if settings:
            nengo_dl.configure_settings(**settings)
        net.stim = nengo.Node(np.zeros(dims), label="stim")
        net.a = nengo.Ensemble(n_neurons, dims, label="a", **ens_kwargs)
        net.b = nengo.Ensemble(n_neurons, dims, label="b", **ens_kwargs)
        net.c_in = nengo.Connection(
            net.stim, net.a, transform=np.eye(dims) * 0.8, synapse=None
        )
        net.c_ab = nengo.Connection(net.a, net.b, synapse=synapse)
        net.c_nn = nengo.Connection(
            net.a.neurons,
            net.b.neurons,
            transform=rng.normal(scale=0.02, size=(n_neurons, n_neurons)),
            synapse=synapse,
        )
        net.c_rec = nengo.Connection(net.b, net.b, transform=0.3, synapse=0.02)
        net.probe = nengo.Probe(net.b, synapse=probe_synapse, label="out")
    return net


def max_rel_error(actual, expected):
    """max |actual - expected| / max |expected| (scale-aware, handles zeros)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = np.max(np.abs(expected))
    assert scale > 0, "reference is all zeros: the test would prove nothing"
    return np.max(np.abs(actual - expected)) / scale
