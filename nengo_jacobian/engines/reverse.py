"""Vectorized reverse mode: many Jacobian rows per backward pass, one row per lane."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from nengo_dl import graph_optimizer

from nengo_jacobian.engines.base import Engine
from nengo_jacobian.exceptions import JacobianError, NonFiniteJacobianError
from nengo_jacobian.labels import object_name
from nengo_jacobian.lanes import lane_elements, lane_planner
from nengo_jacobian.pullback import compiled, lane_plan
from nengo_jacobian.request import Request, non_tensorflow_objects
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
    jit_compile : bool or "auto"
        Compile each pass with XLA. ``"auto"`` (what ``method="auto"`` uses) compiles
        where `xla_pays` predicts faster warm calls: passes not dominated by the
        lanes' own work (XLA's loops use one core). In our benchmark XLA made input
        and weight Jacobians 1.3–3.3× faster warm, at the cost of a first call
        about 0.5 s slower. Results agree with the default to
        float32 rounding (XLA reorders sums; near a LIF threshold that shows as
        ~1e-3 relative), and each request is always computed the same way.

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
        if jit_compile != "auto":
            jit_compile = bool(jit_compile)
        self.jit_compile = jit_compile
        if self.jit_compile is True:
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
        row_steps = request.row_steps
        needed = np.tile(row_steps, request.n_items)
        order = np.argsort(needed, kind="stable")
        if self.chunk_size is None:
            min_passes = math.ceil(total / self.max_lanes)
            costs = _pass_costs(request)
            # the same for every repeat of a request; `needed` tiles row_steps
            key = (
                "passes",
                row_steps.tobytes(),
                request.n_items,
                min_passes,
                costs,
            )
            if key not in sim._jacobian_cache:
                sim._jacobian_cache[key] = causal_passes(
                    needed[order], min_passes, *costs
                )
            n_chunks = sim._jacobian_cache[key]
        else:
            n_chunks = math.ceil(total / self.chunk_size)
        n_lanes = math.ceil(total / n_chunks)
        n_chunks = math.ceil(total / n_lanes)
        plan = lane_plan(sim, request.probes, request.targets, request.n_steps, n_lanes)
        # only a request that may use XLA needs the network scanned for numpy code
        blockers = xla_blockers(sim) if self.jit_compile else []
        if self.jit_compile is True and blockers:
            raise JacobianError(
                f"XLA cannot compile this network: {blockers[0]}. Use "
                f"method='reverse' (the same engine without XLA)."
            )
        jit = self.jit_compile
        refused = sim._jacobian_cache.get(("xla refused", id(plan)))
        if jit == "auto":
            jit = not blockers and not refused and xla_pays(request, n_lanes)
        program = compiled(sim, plan, "checked_pullback", jit)

        dtype = np.dtype(sim.tensor_graph.dtype)
        results = {
            t: np.empty((total,) + request.target_shape(t), dtype)
            for t in request.targets
        }
        inputs = list(request.inputs)  # the program converts (and keeps) them
        steps_simulated = []
        diverged = set()  # items whose simulation is not finite
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
            args = (inputs, items, state_rows, rows, np.asarray(n_run, np.int32))
            try:
                outputs = program(*args)
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
                if not jit:
                    raise
                # an operator XLA cannot compile that xla_blockers did not foresee
                refused = str(e).strip().splitlines()[0]
                if self.jit_compile is True:
                    raise JacobianError(
                        f"XLA could not compile this request's lane graph "
                        f"({refused}). Use method='reverse' (the same engine "
                        f"without XLA)."
                    ) from None
                # auto: remember, and run this plan without XLA from now on
                sim._jacobian_cache[("xla refused", id(plan))] = refused
                jit = False
                program = compiled(sim, plan, "checked_pullback", False)
                outputs = program(*args)
            outputs, finite = outputs
            diverged.update(items[:n_valid][~finite.numpy()[:n_valid]].tolist())
            for t, value in zip(request.targets, outputs):
                results[t][lanes[:n_valid]] = value.numpy()[:n_valid]
        if diverged:
            raise NonFiniteJacobianError(
                f"The Jacobian of {_names(request.probes)} w.r.t. "
                f"{', '.join(t.name for t in request.targets)} is undefined: the "
                f"simulation's outputs are NaN or infinite for item(s) "
                f"{sorted(diverged)}. Check the input data and weights for extreme "
                f"values (rates overflow), or use dtype='float64'."
            )
        sim.jacobian_info.update(
            engine="reverse (XLA)" if jit else "reverse",
            jit_compile=jit,
            **({"xla_refused": refused} if refused else {}),
            lanes=n_lanes,
            passes=n_chunks,
            steps_simulated=steps_simulated,
        )
        return {
            t: r.reshape((request.n_items, n_rows) + r.shape[1:])
            for t, r in results.items()
        }


def _names(probes) -> str:
    return ", ".join(f"Probe {object_name(p)}" for p in probes)


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
    key = ("pass costs", len(operators))  # the model is fixed once built
    if key not in sim._jacobian_cache:
        merged = lane_planner(operators) is not graph_optimizer.noop_planner
        groups = len(sim.tensor_graph.plan) if merged else len(operators)
        sim._jacobian_cache[key] = groups, lane_elements(operators)
    groups, elements = sim._jacobian_cache[key]
    for target in request.targets:
        if target.entry is not None:
            for rule in rules_for(target.entry, operators):
                elements += rule.perturbed.size
                elements += 0 if rule.tapped is None else rule.tapped.size
        elif target.signal is not None:
            elements += target.signal.size
    return OPERATOR_COST * groups, float(elements)


#: XLA pays when a pass's per-step work over its lanes is below this many times its
#: per-step operator overhead (both as `_pass_costs` models them). Measured on warm
#: Jacobians of `benchmarks/jacobian_speed.py`'s network (2-core CPU, lanes sharing
#: their neurons' nonlinearities and taps), plain time / XLA time: for inputs 2.3×
#: at model ratio 5.2 (2 × 1000 neurons, 150 steps), 1.9× at 5.1 (2 × 4000, 50
#: steps) and 1.4× at 10.3 (2 × 2000, 150 steps); for weights 3.3× at 1.5 (2 × 200,
#: 20 steps), 1.7× at 3.6 (2 × 1000, 20 steps), 1.2–1.5× at 4.5 and 1.3–1.5× at
#: 9.0 (2 × 1000 to 2 × 4000 neurons). `causal_passes` keeps these requests' ratios
#: at 10 or less; beyond that XLA's loops, which use one core where TensorFlow's
#: kernels use both, are untested and assumed to lose.
XLA_BREAK_EVEN = 12.0


def xla_pays(request: Request, n_lanes: int) -> bool:
    """Whether XLA is predicted to make this request's passes faster warm.

    Parameters
    ----------
    request : nengo_jacobian.request.Request
        The request.
    n_lanes : int
        Lanes per pass.

    Returns
    -------
    bool
        True where the lanes' work per step, ``n_lanes · lane_cost``, is below
        `XLA_BREAK_EVEN` times the per-step operator overhead (`_pass_costs`).

    Examples
    --------
    >>> import nengo, numpy as np, nengo_jacobian
    >>> from nengo_jacobian.engines.reverse import xla_pays
    >>> from nengo_jacobian.request import build_request
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node(np.zeros(2), label="stim")
    ...     ens = nengo.Ensemble(10, 2, label="ens")
    ...     _ = nengo.Connection(stim, ens, synapse=None)
    ...     out = nengo.Probe(ens, synapse=0.01, label="out")
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     inputs, *_ = build_request(sim, out, stim, None, 5)
    ...     weights, *_ = build_request(sim, out, ens, None, 5)  # its encoders
    ...     [xla_pays(r, n) for r in (inputs, weights) for n in (10, 10**5)]
    [True, False, True, False]
    """
    step_overhead, lane_cost = _pass_costs(request)
    return n_lanes * lane_cost < XLA_BREAK_EVEN * step_overhead


def xla_blockers(sim) -> list[str]:
    """Why XLA cannot compile the simulator's lane graphs (empty if it can).

    Lane graphs run the whole network, so any object that NengoDL runs as numpy
    code (a Python-function Node, a numpy Process, a Direct-mode ensemble) stops
    XLA, whether or not it lies on the Jacobian's path.

    Examples
    --------
    >>> import nengo, nengo_jacobian
    >>> from nengo_jacobian.engines.reverse import xla_blockers
    >>> with nengo.Network() as net:
    ...     stim = nengo.Node([0.0], label="stim")
    ...     square = nengo.Node(lambda t, x: x**2, size_in=1, label="square")
    ...     _ = nengo.Connection(stim, square, synapse=None)
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     xla_blockers(sim)
    ['Node square runs outside TensorFlow (it runs a Python function)']
    """
    return [
        f"{type(obj).__name__} {name} runs outside TensorFlow ({reason})"
        for obj, name, reason in non_tensorflow_objects(sim)
    ]
