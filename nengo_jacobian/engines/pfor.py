"""TensorFlow's vectorized ``tape.jacobian`` (pfor), where it works."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nengo_jacobian.engines.base import Engine, snapshot_state
from nengo_jacobian.engines.loop import _unique_variables
from nengo_jacobian.exceptions import JacobianError
from nengo_jacobian.request import Request


class TapeJacobian(Engine):
    """``tape.jacobian(..., experimental_use_pfor=True)`` on the user's Keras model.

    TensorFlow's ``pfor`` vectorizes the backward pass over output rows, but it cannot
    pass NengoDL's ``tf.while_loop``. It works when the simulator unrolls every step
    into the graph: ``nengo_dl.configure_settings(use_loop=False)`` and
    ``unroll_simulation`` equal to the request's ``n_steps`` (then graph building
    grows with ``n_steps``). This engine runs exactly that inside one cached
    ``tf.function`` per request signature, as an independent check and for users who
    build unrolled simulators anyway. Weight Jacobians come per item for free: each
    item's output rows are separate rows of ``tape.jacobian``. The simulator's
    variables are restored after each call, as for `ReferenceLoop`.

    Examples
    --------
    >>> import nengo, nengo_dl, numpy as np, nengo_jacobian
    >>> with nengo.Network(seed=0) as net:
    ...     nengo_dl.configure_settings(use_loop=False)
    ...     stim = nengo.Node(np.zeros(2), label="stim")
    ...     relu = nengo.RectifiedLinear()
    ...     ens = nengo.Ensemble(10, 2, neuron_type=relu, label="ens")
    ...     conn = nengo.Connection(ens, ens, synapse=0.01, label="rec")
    ...     _ = nengo.Connection(stim, ens, synapse=None)
    ...     out = nengo.Probe(ens, synapse=None, label="out")

    >>> from nengo_jacobian.engines import TapeJacobian
    >>> x = np.full((1, 3, 2), 0.5)
    >>> kwargs = dict(unroll_simulation=3, progress_bar=False)
    >>> with nengo_jacobian.Simulator(net, **kwargs) as sim:
    ...     jac = sim.jacobian(out, [stim, conn], x, method=TapeJacobian())
    ...     reference = sim.jacobian(out, [stim, conn], x, method="reverse")
    >>> bool(np.allclose(jac[conn], reference[conn], rtol=1e-4, atol=1e-6))
    True
    """

    name = "pfor"

    def supports(self, request: Request) -> bool:
        """Whether the simulator is unrolled to ``n_steps`` and no target is hidden."""
        return not _why_unsupported(request)

    def compute(self, request: Request) -> dict:
        """Compute ``request`` one minibatch at a time; see `Engine.compute`."""
        reason = _why_unsupported(request)
        if reason:
            raise JacobianError(f"method='pfor' (TapeJacobian) cannot run: {reason}.")
        sim = request.sim
        batch = sim.minibatch_size
        weight_targets = [t for t in request.targets if t.entry is not None]
        variables = _unique_variables(t.entry.variable for t in weight_targets)
        program = _program(sim, request, variables)
        restore_state = snapshot_state(sim)
        input_index = {n: i for i, n in enumerate(sim.tensor_graph.invariant_inputs)}
        items = np.arange(batch)
        parts = {t: [] for t in request.targets}
        for start in request.track(range(0, request.n_items, batch)):
            chunk = [tf.constant(x[start : start + batch]) for x in request.inputs]
            input_jacs, variable_jacs = program(chunk)
            restore_state()
            for t in request.targets:
                if t.is_input:
                    # (batch, rows, batch, steps, size): items never interact
                    full = input_jacs[input_index[t.node]].numpy()
                    parts[t].append(full[items, :, items])
                else:
                    index = [id(v) for v in variables].index(id(t.entry.variable))
                    parts[t].append(t.entry.take(variable_jacs[index].numpy()))
        sim.jacobian_info.update(lanes=request.n_rows, passes=request.n_items // batch)
        return {t: np.concatenate(p) for t, p in parts.items()}


def _why_unsupported(request: Request) -> str:
    sim = request.sim
    if any(t.signal is not None for t in request.targets):
        return "the Keras model has no input at hidden signals; use method='reverse'"
    if sim.tensor_graph.use_loop:
        return (
            "pfor cannot vectorize NengoDL's simulation loop; build the simulator "
            "with nengo_dl.configure_settings(use_loop=False) and "
            f"unroll_simulation={request.n_steps}"
        )
    if sim.unroll != request.n_steps:
        return (
            f"the simulator is unrolled to {sim.unroll} steps but {request.n_steps} "
            f"are requested; build it with unroll_simulation={request.n_steps}"
        )
    return ""


def _program(sim, request: Request, variables: list):
    """Cached ``tf.function(inputs) -> (input Jacobians, variable Jacobians)``."""
    probe_index = [sim.model.probes.index(p) for p in request.probes]
    rows = request.rows
    key = ("pfor", tuple(probe_index), tuple(rows), tuple(map(id, variables)))
    cache = sim._jacobian_cache
    if key in cache:
        return cache[key]
    steps = np.full((sim.minibatch_size, 1), request.n_steps, np.int32)

    @tf.function(autograph=False)
    def jacobians(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = sim.keras_model(list(inputs) + [steps], training=True)
            flat = tf.concat(
                [tf.reshape(outputs[i], (sim.minibatch_size, -1)) for i in probe_index],
                axis=1,
            )
            selected = tf.gather(flat, rows, axis=1)
        return tape.jacobian(
            selected,
            [list(inputs), variables],
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
            experimental_use_pfor=True,
        )

    cache[key] = jacobians
    return jacobians
