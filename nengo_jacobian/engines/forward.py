"""Forward mode: one lane per input column, every output row at once."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from nengo_jacobian.engines.base import Engine
from nengo_jacobian.pullback import compiled, lane_plan
from nengo_jacobian.request import Request


class ForwardMode(Engine):
    """Jacobian columns as Jacobian-vector products, one lane per column and item.

    Cheap when the input side is small and the output side large: a time-tied input
    (one column per input dimension, however many steps) or a short input window
    against many output steps and dimensions. TensorFlow's ``ForwardAccumulator``
    cannot pass NengoDL's TensorArray-based simulation loop, so each product is
    computed exactly by transposing a vector-Jacobian product (a second backward
    pass); a lane costs about twice a reverse-mode lane.

    Supports input Nodes and `~nengo_jacobian.Hidden` signals (weights have one column
    per weight element: use reverse mode).

    Parameters
    ----------
    chunk_size : int
        Maximum number of lanes (columns over all items) per pass.

    Examples
    --------
    >>> import nengo, numpy as np, nengo_jacobian
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node(np.zeros(2), label="stim")
    ...     relu = nengo.RectifiedLinear()
    ...     ens = nengo.Ensemble(10, 2, neuron_type=relu, label="ens")
    ...     conn = nengo.Connection(ens, ens, synapse=0.01, label="rec")
    ...     _ = nengo.Connection(stim, ens, synapse=None)
    ...     out = nengo.Probe(ens, synapse=None, label="out")

    >>> from nengo_jacobian.engines import ForwardMode
    >>> x = np.full((1, 3, 2), 0.5)
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     jac = sim.jacobian(out, stim, x, method=ForwardMode())
    ...     reference = sim.jacobian(out, stim, x, method="reverse")
    >>> jac.shape, bool(np.allclose(jac, reference, rtol=1e-3, atol=1e-5))
    ((1, 3, 2, 3, 2), True)
    """

    name = "forward"
    handles_tied = True

    def __init__(self, chunk_size: int = 256):
        self.chunk_size = max(1, int(chunk_size))

    def __repr__(self) -> str:
        return f"ForwardMode(chunk_size={self.chunk_size})"

    def supports(self, request: Request) -> bool:
        """Whether every target is an input Node or a hidden signal."""
        return all(t.entry is None for t in request.targets)

    def compute(self, request: Request) -> dict:
        """Compute ``request`` column by column; see `Engine.compute`."""
        if not self.supports(request):
            raise NotImplementedError(
                "ForwardMode takes input Nodes and Hidden signals; a weight has one "
                "column per element, so use method='reverse' for weights."
            )
        sim = request.sim
        dtype = np.dtype(sim.tensor_graph.dtype)
        results = {}
        passes = 0
        for target in request.targets:
            n_steps, size = request.n_steps, request.target_shape(target)[-1]
            if request.tied:
                columns = np.eye(size, dtype=dtype)[:, None, :].repeat(n_steps, axis=1)
            else:
                columns = np.eye(n_steps * size, dtype=dtype).reshape(-1, n_steps, size)
            n_columns = len(columns)
            total = request.n_items * n_columns
            n_chunks = math.ceil(total / self.chunk_size)
            n_lanes = math.ceil(total / n_chunks)
            plan = lane_plan(sim, request.probes, [target], request.n_steps, n_lanes)
            program = compiled(sim, plan, "pushforward")
            out = np.zeros((total, request.n_rows), dtype)
            inputs = [tf.constant(x) for x in request.inputs]
            for chunk in request.track(range(n_chunks)):
                lanes = np.arange(chunk * n_lanes, min((chunk + 1) * n_lanes, total))
                n_valid = len(lanes)
                lanes = np.pad(lanes, (0, n_lanes - n_valid))
                items = (lanes // n_columns).astype(np.int32)
                tangents = columns[lanes % n_columns]
                tangents[n_valid:] = 0
                pushed = program(
                    inputs,
                    items,
                    (items % sim.minibatch_size).astype(np.int32),
                    tf.constant(tangents),
                ).numpy()
                out[lanes[:n_valid]] = pushed[:n_valid][:, request.rows]
            passes += n_chunks
            # (items, columns, rows) -> (items, rows, *column shape)
            out = out.reshape(request.n_items, n_columns, request.n_rows)
            out = np.moveaxis(out, 1, 2)
            shape = (size,) if request.tied else (n_steps, size)
            results[target] = out.reshape((request.n_items, request.n_rows) + shape)
        sim.jacobian_info.update(passes=passes)
        return results
