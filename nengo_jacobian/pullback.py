"""Vector-Jacobian products through a lane graph, as TensorFlow code.

`LanePlan` is the TensorFlow core shared by the vectorized reverse engine (which seeds
every lane with a one-hot output row and assembles numpy Jacobians) and by the training
tools (which call it inside a user's loss, where the result stays differentiable w.r.t.
the simulator's weights, so Jacobians can appear in losses).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from nengo_dl import config as dl_config
from tensorflow.python.ops.resource_variable_ops import ResourceVariable

from nengo_jacobian.exceptions import JacobianError
from nengo_jacobian.lanes import LaneGraph
from nengo_jacobian.request import lane_blockers
from nengo_jacobian.weight_rules import contract_all, rules_for


def _unique(signals):
    seen = {}
    for s in signals:
        seen.setdefault(id(s), s)
    return list(seen.values())


def lane_graph(sim, n_lanes: int, perturbed=(), tapped=()) -> LaneGraph:
    """The simulator's cached `LaneGraph` with these lanes, perturbations and taps."""
    key = ("lanes", n_lanes, tuple(map(id, perturbed)), tuple(map(id, tapped)))
    cache = sim._jacobian_cache
    if key not in cache:
        blockers = lane_blockers(sim)
        if blockers:
            raise JacobianError(
                f"The lane engines cannot replay this network: {blockers[0]}, with a "
                f"random generator per minibatch item, and lanes replay each item "
                f"many times. Use method='loop' (which runs your own graph), or take "
                f"the Jacobian of a copy of the network without it."
            )
        # eagerly, even inside a tf.function (see _untraced_variable)
        with tf.init_scope(), tf.variable_creator_scope(_untraced_variable):
            cache[key] = LaneGraph(sim, n_lanes, perturbed, tapped)
    return cache[key]


_VARIABLE_ARGS = set(inspect.signature(ResourceVariable.__init__).parameters) - {"self"}


def _untraced_variable(next_creator, **kwargs):
    """Create a variable eagerly, unseen by any ``tf.function`` being traced.

    A lane graph may first be asked for inside a training step's ``tf.function``, and
    NengoDL's ``TensorGraph.build`` creates variables (copies of the parameters and
    state, which the lane graph never reads: it uses the simulator's own). A
    ``tf.function`` whose first trace creates variables traces itself a second time,
    which doubled the first call of every Jacobian loss. Constructing the variable
    directly, instead of through ``next_creator``, keeps it out of the function's
    variable capture.
    """
    args = {k: v for k, v in kwargs.items() if k in _VARIABLE_ARGS}
    return ResourceVariable(**args)


def lane_plan(sim, probes, targets, n_steps: int, n_lanes: int) -> LanePlan:
    """The simulator's cached `LanePlan` for these probes, targets, steps and lanes."""
    key = (
        "plan",
        int(n_lanes),
        int(n_steps),
        tuple(sim.model.probes.index(p) for p in probes),
        tuple(t.identity for t in targets),
    )
    cache = sim._jacobian_cache
    if key not in cache:
        cache[key] = LanePlan(sim, probes, targets, n_steps, n_lanes)
    return cache[key]


def compiled(sim, plan: LanePlan, method: str, jit_compile: bool = False):
    """``plan.pullback`` or ``plan.pushforward`` as a `Program`, traced once.

    With ``jit_compile`` it is compiled by XLA (lane graphs have a fixed number of
    steps, which XLA needs).
    """
    key = ("compiled", id(plan), method, bool(jit_compile))
    cache = sim._jacobian_cache
    if key not in cache:
        cache[key] = Program(
            tf.function(
                getattr(plan, method), autograph=False, jit_compile=bool(jit_compile)
            )
        )
    return cache[key]


class Program:
    """A ``tf.function`` called through its concrete functions, one per signature.

    Calling a ``tf.function`` matches its arguments against every traced signature
    on each call; for a small Jacobian that cost about 1 ms of a 4 ms call. A
    `Program` converts numpy arguments to tensors and looks their shapes and dtypes
    up itself. Defaults are passed explicitly (TensorFlow 2.20's concrete functions
    require every argument).

    Small arrays (a pass's lane indices, the same for every repeat of a request,
    and small input data) are converted once and kept, looked up by their bytes, and
    the concrete function is called with its flat tensor arguments where TensorFlow
    allows: at 2 × 200 neurons over 20 steps these took 0.3 ms of a 1.5 ms input
    Jacobian.

    Parameters
    ----------
    function : tf.types.experimental.GenericFunction
        The ``tf.function``.

    Examples
    --------
    >>> import numpy as np, tensorflow as tf
    >>> from nengo_jacobian.pullback import Program
    >>> def scaled(x, factor=2.0):
    ...     return x * factor
    >>> program = Program(tf.function(scaled))
    >>> program(np.ones(3, np.float32)).numpy()  # traced for a float32 (3,) input
    array([2., 2., 2.], dtype=float32)
    >>> program(np.zeros(3, np.float32)).numpy()  # the same signature: no retrace
    array([0., 0., 0.], dtype=float32)
    >>> len(program._concrete)
    1
    """

    #: Numeric arrays of fewer elements than this are kept as tensors.
    KEEP_BELOW = 1 << 14

    def __init__(self, function):
        self.function = function
        self._signature = inspect.signature(function.python_function)
        self._concrete = {}
        self._kept = {}

    def __call__(self, *args):
        """``function(*args)``, tracing only for a new signature."""
        bound = self._signature.bind(*args)
        bound.apply_defaults()
        args = tf.nest.map_structure(self._as_tensor, bound.args)
        flat = tf.nest.flatten(args)
        key = tuple(
            (tuple(x.shape), x.dtype) if tf.is_tensor(x) else (type(x), x) for x in flat
        )
        if key not in self._concrete:
            concrete = self.function.get_concrete_function(*args)
            # its flat inputs are the tensors among the arguments, in order; a
            # private API, so only where it exists and every tensor is eager
            fast = hasattr(concrete, "_call_flat") and all(
                isinstance(x, _EagerTensor) for x in flat if tf.is_tensor(x)
            )
            self._concrete[key] = concrete, fast
        concrete, fast = self._concrete[key]
        if fast:
            tensors = [x for x in flat if tf.is_tensor(x)]
            return concrete._call_flat(tensors, concrete.captured_inputs)
        return concrete(*args)

    def _as_tensor(self, x):
        """`_as_tensor`, keeping small arrays' tensors for the next call."""
        if not (
            isinstance(x, np.ndarray)
            and x.dtype.kind in "iuf"
            and x.size < self.KEEP_BELOW
        ):
            return _as_tensor(x)
        # by value: the same bytes are the same tensor, whoever holds the array
        key = (x.shape, x.dtype.str, x.tobytes())
        tensor = self._kept.get(key)
        if tensor is None:
            if len(self._kept) > 256:
                self._kept.clear()
            tensor = self._kept[key] = tf.convert_to_tensor(x)
        return tensor


_EagerTensor = type(tf.constant(0))


def _as_tensor(x):
    """Arrays as tensors; Python values (None, flags) stay as they are."""
    return tf.convert_to_tensor(x) if isinstance(x, (np.ndarray, np.generic)) else x


class LanePlan:
    """How to pull cotangents on probes back to targets, ``n_lanes`` at a time.

    Parameters
    ----------
    sim : nengo_jacobian.Simulator
        The simulator.
    probes : sequence of nengo.Probe
        The outputs; their flattened ``(step, dim)`` rows are concatenated in order.
    targets : sequence of nengo_jacobian.request.Target
        Input Nodes, weights or hidden signals.
    n_steps : int
        Number of simulation steps.
    n_lanes : int
        Lanes per pass.
    """

    def __init__(
        self, sim, probes: Sequence, targets: Sequence, n_steps: int, n_lanes: int
    ):
        self.sim = sim
        self.targets = list(targets)
        self.n_steps = int(n_steps)
        self.n_lanes = int(n_lanes)
        rules = {
            t: rules_for(t.entry, sim.model.operators)
            for t in self.targets
            if t.entry is not None
        }
        self.perturbed = _unique(
            [r.perturbed for rs in rules.values() for r in rs]
            + [t.signal for t in self.targets if t.signal is not None]
        )
        self.tapped = _unique(
            r.tapped for rs in rules.values() for r in rs if r.tapped is not None
        )
        self.lanes = lane_graph(sim, self.n_lanes, self.perturbed, self.tapped)
        self.probe_index = [sim.model.probes.index(p) for p in probes]
        #: Number of flattened output rows over the plan's probes.
        self.width = sum(
            (
                self.n_steps
                if dl_config.get_setting(sim.model, "keep_history", True, obj=p)
                else 1
            )
            * int(p.size_in)
            for p in probes
        )
        inputs = {n: i for i, n in enumerate(sim.tensor_graph.invariant_inputs)}
        self.specs = []
        for t in self.targets:
            if t.node is not None:
                self.specs.append(("input", inputs[t.node]))
            elif t.signal is not None:
                self.specs.append(("hidden", self._index(t.signal)))
            else:
                self.specs.append(
                    (
                        "weight",
                        [
                            (
                                self._index(r.perturbed),
                                None
                                if r.tapped is None
                                else [id(s) for s in self.tapped].index(id(r.tapped)),
                                r,
                            )
                            for r in rules[t]
                        ],
                    )
                )

    def flatten(self, probes: list) -> tf.Tensor:
        """``(n_lanes, n_rows)``: the requested probes' outputs, flattened in order."""
        return tf.concat(
            [tf.reshape(probes[i], (self.n_lanes, -1)) for i in self.probe_index],
            axis=1,
        )

    def outputs(self, inputs, items, state_rows) -> list:
        """The requested probes' outputs, ``(n_lanes, steps, dims)`` each."""
        x_lanes = [tf.gather(x, items) for x in inputs]
        perturbations = [
            tf.zeros((self.n_steps, self.n_lanes, s.size), self.lanes.dtype)
            for s in self.perturbed
        ]
        probes, _ = self.lanes.run(
            x_lanes,
            perturbations,
            self.n_steps,
            state_rows,
            slots=self._slots(inputs, items, state_rows),
        )
        return [probes[i] for i in self.probe_index]

    def _slots(self, inputs, items, state_rows) -> tuple[tf.Tensor, int] | None:
        """Which lanes replay the same forward pass, for `LaneGraph.run`'s ``slots``.

        A lane's forward pass is fixed by its inputs (its item) and, without inputs,
        by the saved state it starts from; perturbations here are always zero.
        """
        if inputs:
            n_items = inputs[0].shape[0]
            return None if n_items is None else (tf.convert_to_tensor(items), n_items)
        return tf.convert_to_tensor(state_rows), self.sim.minibatch_size

    def _index(self, signal) -> int:
        return [id(s) for s in self.perturbed].index(id(signal))

    def checked_pullback(self, inputs, items, state_rows, seeds, n_run=None) -> tuple:
        """`pullback`, and whether each lane's own outputs were finite.

        A simulation that diverged (NaN or infinite outputs) has no meaningful
        Jacobian, and how NaN flows backwards depends on the compiler (XLA's ReLU
        gradient is a select, which turns NaN into zeros), so engines check the
        forward pass itself.

        Returns
        -------
        outputs : list of tf.Tensor
            As for `pullback`.
        finite : tf.Tensor
            ``(n_lanes,)`` bool: whether all of the lane's probe outputs are finite.
        """
        return self.pullback(inputs, items, state_rows, seeds, n_run, _finite=True)

    def pullback(self, inputs, items, state_rows, seeds, n_run=None, _finite=False):
        """Per-lane ``seedᵀ · ∂(probe rows)/∂target`` for every target.

        Parameters
        ----------
        inputs : list of tf.Tensor
            One ``(n_items, n_steps, size_out)`` tensor per input Node of the network.
        items, state_rows : tf.Tensor
            ``(n_lanes,)`` int32: the data item each lane replays and the row of the
            simulator's saved state it starts from.
        seeds : tf.Tensor
            ``(n_lanes,)`` int32 output rows (one-hot seeds; -1 for none), or
            ``(n_lanes, n_rows)`` float cotangents.
        n_run : tf.Tensor, optional
            int32 scalar: simulate only the first ``n_run`` steps, enough for seeds
            on output steps before ``n_run`` (see `LaneGraph.run`). Defaults to all.

        Returns
        -------
        list of tf.Tensor
            One ``(n_lanes, *target_shape)`` tensor per target.
        """
        with tf.GradientTape() as tape:
            x_lanes = [tf.gather(x, items) for x in inputs]
            dtype = self.lanes.dtype
            # time-major, as the loop reads them and returns their gradients
            perturbations = [
                tf.zeros((self.n_steps, self.n_lanes, s.size), dtype)
                for s in self.perturbed
            ]
            tape.watch(x_lanes + perturbations)
            probes, taps = self.lanes.run(
                x_lanes,
                perturbations,
                self.n_steps,
                state_rows,
                n_run,
                slots=self._slots(inputs, items, state_rows),
            )
            flat = self.flatten(probes)
            if _finite:
                finite = tf.reduce_all(tf.math.is_finite(flat), axis=1)
            if seeds.dtype.is_integer:
                seeds = tf.one_hot(seeds, tf.shape(flat)[1], dtype=flat.dtype)
            objective = tf.reduce_sum(flat * seeds)
        grads = tape.gradient(
            objective,
            x_lanes + perturbations,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        input_grads, perturbation_grads = grads[: len(x_lanes)], grads[len(x_lanes) :]
        weights = iter(
            contract_all(
                [spec for kind, spec in self.specs if kind == "weight"],
                perturbation_grads,
                taps,
            )
        )
        outputs = []
        for kind, spec in self.specs:
            if kind == "input":
                outputs.append(input_grads[spec])
            elif kind == "hidden":
                outputs.append(tf.transpose(perturbation_grads[spec], (1, 0, 2)))
            else:
                outputs.append(next(weights))
        return (outputs, finite) if _finite else outputs

    def pushforward(self, inputs, items, state_rows, tangents) -> tf.Tensor:
        """Per-lane Jacobian-vector products ``∂(probe rows)/∂target · z``.

        TensorFlow's ``ForwardAccumulator`` cannot pass NengoDL's TensorArray-based
        loop, so this transposes the vector-Jacobian product: ``vᵀ J z`` is linear in
        ``v`` and its gradient w.r.t. ``v`` is ``J z`` (exact; one more backward pass).

        Parameters
        ----------
        inputs, items, state_rows
            As for `pullback`.
        tangents : tf.Tensor
            ``(n_lanes, *target_shape)`` for the plan's single target.

        Returns
        -------
        tf.Tensor
            ``(n_lanes, n_rows)`` over the flattened, concatenated probes.
        """
        v = tf.zeros((self.n_lanes, self.width), tangents.dtype)
        with tf.GradientTape() as tape:
            tape.watch(v)
            (pulled,) = self.pullback(inputs, items, state_rows, v)
            scalar = tf.reduce_sum(pulled * tangents)
        return tape.gradient(scalar, v)
