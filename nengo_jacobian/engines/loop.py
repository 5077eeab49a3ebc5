"""The reference engine: one backward pass per output row, as users write it by hand."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nengo_jacobian.engines.base import Engine, snapshot_state
from nengo_jacobian.request import Request


class ReferenceLoop(Engine):
    """One ``tape.gradient`` per output row on the user's own ``sim.keras_model``.

    This is the loop from the NengoDL forum, made correct: it calls
    ``sim.keras_model(..., training=True)`` inside a ``tf.function`` and differentiates
    one output row at a time w.r.t. the input tensors and NengoDL's merged variables,
    then cuts each weight out of its variable. It shares no code with
    `VectorizedReverse` beyond request validation, so the two check each other. Weight
    rows are taken per item (weights are shared across the minibatch), so it costs
    ``rows × minibatch_size`` passes when weights are requested.

    The simulator's variables (saved state, and weights that learning rules change)
    are restored after every pass, so the loop leaves the simulator as it found it.

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

    >>> from nengo_jacobian.engines import ReferenceLoop
    >>> x = np.full((1, 3, 2), 0.5)
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     jac = sim.jacobian(out, stim, x, method=ReferenceLoop())
    ...     reference = sim.jacobian(out, stim, x, method="reverse")
    >>> jac.shape, bool(np.allclose(jac, reference, rtol=1e-3, atol=1e-5))
    ((1, 3, 2, 3, 2), True)
    """

    name = "loop"

    def supports(self, request: Request) -> bool:
        """Whether no target is a hidden signal (the Keras model has no input there)."""
        return all(t.signal is None for t in request.targets)

    def compute(self, request: Request) -> dict:
        """Compute ``request`` row by row; see `Engine.compute`."""
        if not self.supports(request):
            raise NotImplementedError(
                "ReferenceLoop differentiates the user's own Keras model, which has no "
                "input at hidden signals; use method='reverse' for Hidden targets."
            )
        sim = request.sim
        batch = sim.minibatch_size
        n_rows = request.n_rows
        weight_targets = [t for t in request.targets if t.entry is not None]
        variables = _unique_variables(t.entry.variable for t in weight_targets)
        grad_fn = _row_gradient(sim, request, variables)
        restore_state = snapshot_state(sim)

        dtype = np.dtype(sim.tensor_graph.dtype)
        results = {
            t: np.zeros((request.n_items, n_rows) + request.target_shape(t), dtype)
            for t in request.targets
        }
        input_index = {n: i for i, n in enumerate(sim.tensor_graph.invariant_inputs)}
        # Inputs: items are independent, so one pass per row serves a whole minibatch.
        # Weights: shared by all items, so each item needs its own pass.
        item_masks = (
            [np.eye(batch, dtype=dtype)[b] for b in range(batch)]
            if weight_targets
            else [np.ones(batch, dtype)]
        )
        for start in range(0, request.n_items, batch):
            chunk = [tf.constant(x[start : start + batch]) for x in request.inputs]
            for mask in item_masks:
                for position, row in request.track(
                    enumerate(request.rows), len(request.rows)
                ):
                    input_grads, var_grads = grad_fn(
                        chunk, tf.constant(mask), tf.constant(int(row), tf.int32)
                    )
                    restore_state()
                    for t in request.targets:
                        if t.is_input:
                            g = input_grads[input_index[t.node]].numpy()
                            for b in np.flatnonzero(mask):
                                results[t][start + b, position] = g[b]
                        else:
                            index = [id(v) for v in variables].index(
                                id(t.entry.variable)
                            )
                            g = var_grads[index].numpy()
                            b = int(np.flatnonzero(mask)[0])
                            results[t][start + b, position] = t.entry.take(g)
        sim.jacobian_info.update(
            lanes=1, passes=(request.n_items // batch) * len(item_masks) * n_rows
        )
        return results


def _unique_variables(variables):
    out = []
    for v in variables:
        if not any(v is u for u in out):
            out.append(v)
    return out


def _row_gradient(sim, request, variables):
    """``tf.function(inputs, item_mask, row) -> (input grads, variable grads)``."""
    probe_index = [sim.model.probes.index(p) for p in request.probes]
    steps = np.full((sim.minibatch_size, 1), request.n_steps, np.int32)

    @tf.function(autograph=False)
    def row_gradient(inputs, item_mask, row):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = sim.keras_model(list(inputs) + [steps], training=True)
            flat = tf.concat(
                [tf.reshape(outputs[i], (sim.minibatch_size, -1)) for i in probe_index],
                axis=1,
            )
            objective = tf.reduce_sum(tf.gather(flat, row, axis=1) * item_mask)
        grads = tape.gradient(
            objective,
            [list(inputs), variables],
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        return grads[0], grads[1]

    return row_gradient
