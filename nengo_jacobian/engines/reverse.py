"""Vectorized reverse mode: many Jacobian rows per backward pass, one row per lane."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from nengo_dl import graph_optimizer

from nengo_jacobian.engines.base import Engine
from nengo_jacobian.lanes import lane_elements, lane_planner
from nengo_jacobian.pullback import compiled, lane_plan
from nengo_jacobian.request import Request
from nengo_jacobian.weight_rules import rules_for


class VectorizedReverse(Engine):
    """Reverse mode, vectorized over output rows with minibatch lanes.

    Each lane of a `~nengo_jacobian.lanes.LaneGraph` replays one minibatch item and
    pulls back one output row, so a single forward and backward pass of the lane graph
    gives ``n_lanes`` rows of the Jacobian w.r.t. the input Nodes, hidden signals and,
    through perturbation gradients and taps (`nengo_jacobian.weight_rules`), weights.
    The result is exact: every lane runs the same rate-mode graph as
    ``sim.keras_model(..., training=True)``.

    Causality is used, not computed: outputs never depend on later inputs, so rows
    are taken in order of their output step and each pass simulates only as many
    steps as its latest row needs. For large networks over many steps, several such
    passes cost less than one (`causal_passes` models the trade-off); the choice is
    in ``sim.jacobian_info`` (``passes``, ``steps_simulated``).

    Parameters
    ----------
    chunk_size : int, optional
        Maximum number of lanes (Jacobian rows, over all items) per pass; bounds peak
        memory. Results do not depend on it (to float32 rounding). By default the
        number of passes is chosen by `causal_passes` (at most ``max_lanes`` lanes
        each).
    max_lanes : int
        Bound on lanes per pass when ``chunk_size`` is not given.
    jit_compile : bool
        Compile each pass with XLA. In our benchmark it made warm input-Jacobian
        calls 2–3× faster (weight Jacobians of 2 × 1000 neurons slower), at the cost
        of a slower first call; results agree with the default to float32 rounding (XLA
        reorders sums; near a LIF threshold that shows as ~1e-3 relative).

    Notes
    -----
    A lane graph is built (a few hundred ms for small networks) for each distinct
    number of lanes, and its ``tf.function`` is traced once per request signature;
    both are cached on the simulator, so repeated requests pay neither.

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

    >>> from nengo_jacobian.engines import VectorizedReverse
    >>> x = np.full((1, 3, 2), 0.5)
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     jac = sim.jacobian(out, stim, x, method=VectorizedReverse(chunk_size=4))
    ...     reference = sim.jacobian(out, stim, x, method="reverse")
    >>> jac.shape, bool(np.allclose(jac, reference, rtol=1e-3, atol=1e-5))
    ((1, 3, 2, 3, 2), True)
    """

    name = "reverse"

    def __init__(
        self,
        chunk_size: int | None = None,
        max_lanes: int = 256,
        jit_compile: bool = False,
    ):
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.max_lanes = int(max_lanes)
        self.jit_compile = bool(jit_compile)
        if self.jit_compile:
            self.name = "reverse (XLA)"

    def __repr__(self) -> str:
        return (
            f"VectorizedReverse(chunk_size={self.chunk_size}, "
            f"jit_compile={self.jit_compile})"
        )

    def supports(self, request: Request) -> bool:
        """Whether every requested weight enters through an operator with a rule."""
        try:
            for target in request.targets:
                if target.entry is not None:
                    rules_for(target.entry, request.sim.model.operators)
        except NotImplementedError:
            return False
        return True

    def compute(self, request: Request) -> dict:
        """Compute ``request`` in chunks of lanes; see `Engine.compute`."""
        sim = request.sim
        n_rows = request.n_rows
        total = request.n_items * n_rows
        # Causality: a row at output step t needs only steps 0..t. Passes take the
        # rows in order of the steps they need and simulate no further.
        needed = np.tile(request.row_steps, request.n_items)
        order = np.argsort(needed, kind="stable")
        if self.chunk_size is None:
            n_chunks = causal_passes(
                needed[order],
                math.ceil(total / self.max_lanes),
                *_pass_costs(request),
            )
        else:
            n_chunks = math.ceil(total / self.chunk_size)
        n_lanes = math.ceil(total / n_chunks)
        n_chunks = math.ceil(total / n_lanes)
        plan = lane_plan(sim, request.probes, request.targets, request.n_steps, n_lanes)
        program = compiled(sim, plan, "pullback", self.jit_compile)

        dtype = np.dtype(sim.tensor_graph.dtype)
        results = {
            t: np.empty((total,) + request.target_shape(t), dtype)
            for t in request.targets
        }
        inputs = [tf.constant(x) for x in request.inputs]
        steps_simulated = []
        for chunk in request.track(range(n_chunks)):
            lanes = order[chunk * n_lanes : (chunk + 1) * n_lanes]
            n_run = int(needed[lanes].max())
            steps_simulated.append(n_run)
            n_valid = len(lanes)
            lanes = np.pad(lanes, (0, n_lanes - n_valid), constant_values=-1)
            items = np.where(lanes >= 0, lanes // n_rows, 0).astype(np.int32)
            # padding lanes get row -1, i.e. an all-zero seed
            rows = np.where(lanes >= 0, request.rows[lanes % n_rows], -1)
            rows = rows.astype(np.int32)
            state_rows = (items % sim.minibatch_size).astype(np.int32)
            outputs = program(
                inputs, items, state_rows, rows, tf.constant(n_run, tf.int32)
            )
            for t, value in zip(request.targets, outputs):
                results[t][lanes[:n_valid]] = value.numpy()[:n_valid]
        sim.jacobian_info.update(
            lanes=n_lanes, passes=n_chunks, steps_simulated=steps_simulated
        )
        return {
            t: r.reshape((request.n_items, n_rows) + r.shape[1:])
            for t, r in results.items()
        }


#: Per-step cost of one operator group, in units of the per-step cost of one signal
#: element in one lane. Fitted to `benchmarks/jacobian_speed.py` (2-core CPU): with
#: it, 2 × 200 neurons over 20 steps (80 lanes) stay in one pass and 2 × 1000 over
#: 50 steps (200 lanes) take 4, which measured fastest for both.
OPERATOR_COST = 6000


def causal_passes(
    needed: np.ndarray, min_passes: int, step_overhead: float, lane_cost: float
) -> int:
    """How many passes to split the lanes into, exploiting causality.

    A pass simulates as many steps as its latest row needs, so splitting rows sorted
    by the steps they need into more passes simulates fewer lane-steps, at the
    price of the fixed per-step cost of every pass. Modelled cost of a pass of
    ``L`` lanes over ``S`` steps: ``S · (step_overhead + L · lane_cost)``.

    Parameters
    ----------
    needed : numpy.ndarray
        Steps each lane needs, sorted ascending.
    min_passes : int
        The fewest passes allowed (memory bound on lanes per pass).
    step_overhead, lane_cost : float
        Per-step cost of a pass, and per lane and step.

    Returns
    -------
    int
        The number of passes with the least modelled cost, at least ``min_passes``.
    """
    total = len(needed)
    best, best_cost = min_passes, np.inf
    for passes in sorted({min_passes, *(min_passes * k for k in (2, 3, 4, 6, 8))}):
        lanes = math.ceil(total / passes)
        ends = np.minimum(np.arange(lanes, total + lanes, lanes), total) - 1
        cost = float(np.sum(needed[ends])) * (step_overhead + lanes * lane_cost)
        if cost < best_cost:
            best, best_cost = len(ends), cost
    return best


def _pass_costs(request: Request) -> tuple[float, float]:
    """``(step_overhead, lane_cost)`` of a lane pass for `causal_passes`.

    Per step, every operator group costs about `OPERATOR_COST` element-lanes and each
    lane costs its minibatched signal elements, perturbations and taps.
    """
    sim = request.sim
    operators = sim.model.operators
    merged = lane_planner(operators) is not graph_optimizer.noop_planner
    groups = len(sim.tensor_graph.plan) if merged else len(operators)
    elements = lane_elements(operators)
    for target in request.targets:
        if target.entry is not None:
            for rule in rules_for(target.entry, operators):
                elements += rule.perturbed.size
                elements += 0 if rule.tapped is None else rule.tapped.size
        elif target.signal is not None:
            elements += target.signal.size
    return OPERATOR_COST * groups, float(elements)
