"""The built-in example network of the main job."""

from __future__ import annotations

import nengo
import numpy as np


def build_demo_network(n_neurons: int = 100, seed: int = 0) -> nengo.Network:
    """A small spiking network with every kind of weight.

    ``stim`` (2-d input Node) -> ``a`` (LIF) -> ``b`` (LIF, with a recurrent
    connection) -> probe ``out`` (2-d, decoded, filtered). Its attributes ``stim``,
    ``a``, ``b`` and ``out`` give access to the objects.

    Parameters
    ----------
    n_neurons : int
        Neurons per ensemble.
    seed : int
        Network seed.

    Returns
    -------
    nengo.Network
    """
    with nengo.Network(seed=seed, label="demo") as net:
        net.stim = nengo.Node(np.zeros(2), label="stim")
        net.a = nengo.Ensemble(n_neurons, 2, neuron_type=nengo.LIF(), label="a")
        net.b = nengo.Ensemble(n_neurons, 2, neuron_type=nengo.LIF(), label="b")
        nengo.Connection(
            net.stim,
            net.a,
            transform=[[1.0, 0.0], [0.5, 1.0]],
            synapse=None,
            label="stim->a",
        )
        nengo.Connection(net.a, net.b, synapse=0.005, label="a->b")
        nengo.Connection(
            net.b,
            net.b,
            transform=[[0.0, -0.5], [0.5, 0.0]],
            synapse=0.05,
            label="b->b",
        )
        net.out = nengo.Probe(net.b, synapse=0.01, label="out")
    return net


def demo_input(n_steps: int, dt: float = 0.001) -> np.ndarray:
    """``(1, n_steps, 2)``: a slow rotation the demo network is driven with."""
    t = np.arange(1, n_steps + 1) * dt
    return (
        0.6 * np.stack([np.sin(2 * np.pi * 5 * t), np.cos(2 * np.pi * 5 * t)], -1)[None]
    )
