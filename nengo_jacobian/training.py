"""Custom learning loops: losses over probe outputs and Jacobians, labelled gradients.

A loss is a Python function of a `Run`: the rate-mode simulation of one batch of data,
whose probe outputs and Jacobians are TensorFlow tensors that stay differentiable w.r.t.
the simulator's weights. `gradients` returns the gradient of such a loss per labelled
weight; `train_step` hands it to any ``tf.keras`` optimizer, and the trained values are
what ``sim.data``, ``sim.get_nengo_params`` and ``sim.weights`` report afterwards.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from nengo_jacobian.exceptions import JacobianError
from nengo_jacobian.pullback import lane_plan
from nengo_jacobian.request import (
    check_differentiable,
    check_rate_mode,
    prepare_inputs,
    resolve_probes,
    resolve_targets,
)


class Run:
    """The rate-mode simulation of one batch, as seen by a loss function.

    Everything it returns is a ``tf.Tensor`` that is differentiable w.r.t. the
    simulator's weights, including Jacobians (second-order derivatives are exact).
    It reads the live weights and starts from the simulator's saved state, and never
    writes to either.

    Parameters
    ----------
    sim : nengo_jacobian.Simulator
        The simulator.
    inputs : list of tf.Tensor
        One ``(n_items, n_steps, size_out)`` tensor per input Node, in the order of
        ``sim.tensor_graph.invariant_inputs``.
    n_steps : int
        Number of steps.

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

    >>> import tensorflow as tf
    >>> def loss_fn(run):
    ...     y = run[out]                                 # (items, steps, 2)
    ...     jac = run.jacobian(out, stim)                # (items, steps, 2, steps, 2)
    ...     return tf.reduce_mean(tf.square(y)) + tf.reduce_sum(tf.square(jac))
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     loss, grads = sim.gradients(loss_fn, np.full((1, 3, 2), 0.5), wrt=conn)
    >>> grads[conn].shape
    (2, 10)
    """

    def __init__(self, sim, inputs: Sequence[tf.Tensor], n_steps: int):
        self.sim = sim
        self.inputs = list(inputs)
        self.n_steps = int(n_steps)
        self.n_items = (
            int(self.inputs[0].shape[0]) if self.inputs else sim.minibatch_size
        )
        self._outputs = None

    def _lanes(self, per_item: int):
        items = np.repeat(np.arange(self.n_items, dtype=np.int32), per_item)
        return tf.constant(items), tf.constant(items % self.sim.minibatch_size)

    def __getitem__(self, probe) -> tf.Tensor:
        """``(n_items, steps, probe.size_in)``: a probe's output in this run."""
        if self._outputs is None:
            probes = list(self.sim.model.probes)
            plan = lane_plan(self.sim, probes, [], self.n_steps, self.n_items)
            items, rows = self._lanes(1)
            self._outputs = dict(zip(probes, plan.outputs(self.inputs, items, rows)))
        (probe,), _ = resolve_probes(self.sim, probe)
        return self._outputs[probe]

    def input(self, node) -> tf.Tensor:
        """``(n_items, n_steps, node.size_out)``: an input Node's data in this run.

        Useful for per-batch targets: give the network an unconnected input Node
        (e.g. ``nengo.Node(np.zeros(2), label="target")``), pass the targets as its
        data, and read them here.
        """
        nodes = list(self.sim.tensor_graph.invariant_inputs)
        if node not in nodes:
            raise JacobianError(
                f"{node!r} is not an input Node of this simulator; its input Nodes: "
                f"{', '.join(map(repr, nodes)) or 'none'}."
            )
        return self.inputs[nodes.index(node)]

    def vjp(self, of, wrt, cotangents) -> tf.Tensor:
        """Vector-Jacobian products ``vᵀ · ∂of/∂wrt`` for ``K`` vectors per item.

        Parameters
        ----------
        of : nengo.Probe
            The output.
        wrt : input Node, weight or `~nengo_jacobian.Hidden`
            What to differentiate with respect to.
        cotangents : tf.Tensor
            ``(n_items, K, steps, probe dims)``.

        Returns
        -------
        tf.Tensor
            ``(n_items, K, *wrt_shape)``.
        """
        cotangents = tf.convert_to_tensor(cotangents, dtype=self.sim.tensor_graph.dtype)
        n_vectors = int(cotangents.shape[1])
        seeds = tf.reshape(cotangents, (self.n_items * n_vectors, -1))
        result = self._pull(of, wrt, n_vectors, seeds)
        return tf.reshape(result, (self.n_items, n_vectors) + tuple(result.shape[1:]))

    def jacobian(self, of, wrt) -> tf.Tensor:
        """The full Jacobian as a tensor; see `nengo_jacobian.Simulator.jacobian`.

        Parameters
        ----------
        of : nengo.Probe
            The output.
        wrt : input Node, weight or `~nengo_jacobian.Hidden`
            What to differentiate with respect to.

        Returns
        -------
        tf.Tensor
            ``(n_items, steps, probe dims, *wrt_shape)``.
        """
        _, steps, dims = self[of].shape
        n_rows = steps * dims
        rows = tf.constant(np.tile(np.arange(n_rows, dtype=np.int32), self.n_items))
        result = self._pull(of, wrt, n_rows, rows)
        return tf.reshape(result, (self.n_items, steps, dims) + tuple(result.shape[1:]))

    def _pull(self, of, wrt, per_item: int, seeds: tf.Tensor) -> tf.Tensor:
        """Pull ``per_item`` seeds per item back to ``wrt``: ``(lanes, *wrt_shape)``."""
        (probe,), _ = resolve_probes(self.sim, of)
        (target,), _ = resolve_targets(self.sim, wrt)
        check_differentiable(self.sim, [probe], [target])
        n_lanes = self.n_items * per_item
        plan = lane_plan(self.sim, [probe], [target], self.n_steps, n_lanes)
        items, state_rows = self._lanes(per_item)
        (result,) = plan.pullback(self.inputs, items, state_rows, seeds)
        return result


def _entries(sim, wrt):
    if wrt is None:
        entries = [e for e in sim.weights if e.trainable]
        return entries, entries
    items = wrt if isinstance(wrt, list) else [wrt]
    return items, [sim.weights.resolve(item) for item in items]


#: Traced training steps per simulator before we warn about retracing.
MANY_STEP_FUNCTIONS = 20


def _function_key(fn) -> tuple:
    """Identity of a loss function that is stable for bound methods.

    ``obj.method`` is a new object on every attribute access, so its ``id`` would
    change from call to call and every training step would be traced anew.
    """
    if inspect.ismethod(fn):
        return (id(fn.__func__), id(fn.__self__))
    return (id(fn),)


def _step_function(sim, loss_fn, optimizer, entries, n_steps, probes=()):
    key = (
        "step",
        _function_key(loss_fn),
        id(optimizer),
        tuple(map(id, entries)),
        n_steps,
        tuple(map(id, probes)),
    )
    cache = sim._jacobian_cache
    if key in cache:
        return cache[key][0]
    if (
        sum(k[0] == "step" for k in cache if isinstance(k, tuple))
        == MANY_STEP_FUNCTIONS
    ):
        warnings.warn(
            f"{MANY_STEP_FUNCTIONS} different training steps have been traced on this "
            f"simulator, each costing time and memory. Pass the same loss_fn and "
            f"optimizer objects on every call (not a new lambda or closure per step).",
            stacklevel=4,  # the user's sim.train_step / sim.gradients call
        )
    variables = []
    for e in entries:
        if not any(v is e.variable for v in variables):
            variables.append(e.variable)
    if optimizer is not None and hasattr(optimizer, "build"):
        # Its slot variables now, not in apply_gradients: a tf.function whose first
        # trace creates variables is traced twice (Keras' legacy optimizers have no
        # build; with those the first step still is).
        optimizer.build(variables)

    @tf.function(autograph=False)
    def step(inputs):
        with tf.GradientTape() as tape:
            run = Run(sim, inputs, n_steps)
            loss = loss_fn(run)
            outputs = [run[p] for p in probes]
        if loss is None or tf.convert_to_tensor(loss).shape.rank != 0:
            raise JacobianError(
                f"loss_fn must return a scalar tensor, got {loss!r}; reduce it with "
                f"tf.reduce_mean or tf.reduce_sum."
            )
        grads = tape.gradient(
            loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        dense = {id(v): tf.convert_to_tensor(g) for v, g in zip(variables, grads)}
        rows = [tf.gather(dense[id(e.variable)], e.rows) for e in entries]
        if optimizer is not None:
            # Only the chosen weights' rows move, even where NengoDL merged them
            # into one variable with weights that are not being trained.
            updates = []
            for v in variables:
                mine = [i for i, e in enumerate(entries) if e.variable is v]
                updates.append(
                    (
                        tf.IndexedSlices(
                            tf.concat([rows[i] for i in mine], axis=0),
                            tf.constant(
                                np.concatenate([entries[i].rows for i in mine])
                            ),
                            dense_shape=tf.shape(v, out_type=tf.int64),
                        ),
                        v,
                    )
                )
            optimizer.apply_gradients(updates)
        return loss, [tf.reshape(r, e.shape) for r, e in zip(rows, entries)], outputs

    cache[key] = (step, loss_fn, optimizer)  # keep both alive: ids must stay unique
    return step


def _inputs(sim, data, n_steps):
    check_rate_mode(sim)
    inputs, _, n_steps = prepare_inputs(sim, data, n_steps)
    return [tf.constant(x) for x in inputs], n_steps


def gradients(
    sim, loss_fn: Callable[[Run], tf.Tensor], data=None, n_steps=None, wrt=None
) -> tuple[float, dict]:
    """Value and labelled gradients of ``loss_fn``; see `Simulator.gradients`."""
    keys, entries = _entries(sim, wrt)
    inputs, n_steps = _inputs(sim, data, n_steps)
    step = _step_function(sim, loss_fn, None, entries, n_steps)
    loss, grads, _ = step(inputs)
    return float(loss), {k: g.numpy() for k, g in zip(keys, grads)}


def train_step(
    sim, loss_fn, optimizer, data=None, n_steps=None, wrt=None, outputs=None
):
    """One optimizer step on ``loss_fn``; see `Simulator.train_step`."""
    _, entries = _entries(sim, wrt)
    inputs, n_steps = _inputs(sim, data, n_steps)
    probes = []
    if outputs is not None:
        probes, _ = resolve_probes(sim, outputs)
    step = _step_function(sim, loss_fn, optimizer, entries, n_steps, tuple(probes))
    loss, _, values = step(inputs)
    if outputs is None:
        return float(loss)
    return float(loss), {p: v.numpy() for p, v in zip(probes, values)}
