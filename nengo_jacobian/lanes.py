"""The user's built model replayed with one minibatch lane per Jacobian row.

NengoDL fixes the minibatch size when it builds a graph, and minibatch items never
interact. `LaneGraph` rebuilds the *same* built `nengo.builder.Model` (same signals,
seeds and operators) as a second `nengo_dl.tensor_graph.TensorGraph` whose minibatch
holds ``n_lanes`` lanes. Each lane replays one item of the user's minibatch, so one
backward pass with a different one-hot cotangent per lane yields many Jacobian rows at
once.

Two additions make Jacobians w.r.t. weights and hidden signals possible without
per-lane copies of the weights:

- *perturbations*: a `Perturb` operator adds a zero-valued, per-lane input to a signal
  at every step, e.g. to a connection's ``weighted`` signal. The gradient with respect
  to that input is ∂y/∂(the signal at each step).
- *taps*: extra read-only probes on internal signals, e.g. the presynaptic activities
  that a weight multiplies.

A weight's Jacobian is then the contraction of the two (see
`nengo_jacobian.weight_rules`); a hidden signal's is the perturbation gradient itself.

Lanes that replay the same item compute the same forward pass (perturbations are zero),
so the neuron nonlinearities and the weights' matrix products, the expensive parts
of a rate-mode forward pass, are evaluated once per item and shared by its lanes;
each lane still gets its own backward pass (see `share_neurons`, `share_linear`). For
the same reason taps are recorded once per item (`Taps`).

The lane graph owns no parameter values: every time it is called it reads the user's
simulator variables (weights and saved state), so it always sees the live weights, a
Jacobian computation never writes to the user's simulator, and gradients can flow back
to the user's variables.
"""

from __future__ import annotations

import collections
import contextlib
import copy
from collections.abc import Sequence

import nengo_dl.tensor_graph
import numpy as np
import tensorflow as tf
from nengo.builder.operator import Operator
from nengo.builder.signal import Signal
from nengo_dl import compat, graph_optimizer, utils
from nengo_dl import config as dl_config
from nengo_dl.builder import Builder, OpBuilder
from nengo_dl.neuron_builders import (
    GenericNeuronBuilder,
    SimNeuronsBuilder,
    TFNeuronBuilder,
)
from nengo_dl.op_builders import DotIncBuilder
from nengo_dl.tensor_graph import TensorGraph

from nengo_jacobian._settings import forced_setting


class Tap:
    """A read-only probe on an internal signal, recorded at every step of a lane run.

    Parameters
    ----------
    signal : nengo.builder.Signal
        The signal to record.
    """

    label = None

    def __init__(self, signal: Signal):
        self.signal = signal

    def __repr__(self) -> str:
        return f"<Tap {self.signal.name}>"


class Perturb(Operator):
    """``target += perturbation[index](step)``: a per-lane additive input.

    Parameters
    ----------
    target : nengo.builder.Signal
        The signal to perturb.
    index : int
        Which of the lane graph's perturbation inputs to add.
    """

    def __init__(self, target: Signal, index: int, tag: str | None = None):
        super().__init__(tag=tag)
        self.sets, self.incs, self.reads, self.updates = [], [target], [], []
        self.index = index
        self.lane_graph = None

    @property
    def target(self) -> Signal:
        """The perturbed signal."""
        return self.incs[0]

    def make_step(self, signals, dt, rng):  # pragma: no cover - NengoDL only
        """Not available: this operator exists only inside a `LaneGraph`."""
        raise NotImplementedError("Perturb runs only in nengo_jacobian's lane graphs")


@Builder.register(Perturb)
class PerturbBuilder(OpBuilder):
    """Adds this step's slice of a perturbation input to its target signal.

    Reading the input directly (rather than through a Node and a ``Copy``) keeps the
    perturbation out of NengoDL's merged state arrays, whose scatter would copy a
    whole array every step.
    """

    def build_step(self, signals):
        """Scatter-add the current step's perturbation into the target."""
        for op in self.ops:
            value = op.lane_graph.perturbation_step(op.index)
            signals.scatter(signals[op.target], value, mode="inc")

    @staticmethod
    def mergeable(x, y):
        """Never merged: each reads its own input."""
        return False


def lane_elements(operators: Sequence[Operator]) -> int:
    """Number of signal elements each lane holds: the minibatched base signals.

    Parameters
    ----------
    operators : sequence of nengo.builder.Operator
        The built model's operators.

    Returns
    -------
    int
        The summed size of every distinct minibatched base signal they touch.
    """
    sizes = {
        id(s.base): s.base.size
        for op in operators
        for s in op.all_signals
        if s.minibatched
    }
    return int(sum(sizes.values()))


#: `lane_planner` merges operators when the model's minibatched signals hold fewer
#: elements than this per operator (measured; see `lane_planner`).
MERGE_BELOW_ELEMENTS_PER_OP = 48


def lane_planner(operators: Sequence[Operator]):
    """NengoDL's planner for a lane graph of these operators.

    Merging operators (NengoDL's ``tree_planner``) saves per-operator overhead, but
    merged operators share one base array per signal kind, so every operator that
    writes part of it copies the whole array (``tensor_scatter_nd_add``) and every
    slice read has a gradient as large as the array. With many lanes that traffic
    dominates for networks of few, large signals. Measured on our benchmark network
    (4-d input, 2 × N LIF, 26 operators; N = 1000, 310 elements per operator, 50
    steps, 200 lanes): unmerged (``noop_planner``) was about 2× faster for input and
    1.4× for weight Jacobians, and 2× for weights at N = 200 (64 elements per
    operator); a chain of 30 ensembles of 50 neurons (244 operators, 26 elements per
    operator) was 2–3× faster merged. The rule in between: merge when the
    minibatched signals hold fewer than `MERGE_BELOW_ELEMENTS_PER_OP` elements per
    operator. Both planners give the same Jacobians to float32 rounding (tested).

    Parameters
    ----------
    operators : sequence of nengo.builder.Operator
        The built model's operators.

    Returns
    -------
    callable
        ``graph_optimizer.tree_planner`` or ``graph_optimizer.noop_planner``.
    """
    per_op = lane_elements(operators) / max(1, len(operators))
    if per_op < MERGE_BELOW_ELEMENTS_PER_OP:
        return graph_optimizer.tree_planner
    return graph_optimizer.noop_planner


#: `_LaneDotIncBuilder` shares products (`share_linear`) from this many lanes per
#: slot. With fewer its extra gathers cost more than the rows they save: a training
#: step with a 4-lane Jacobian loss (2 × 200 neurons, 20 steps, no XLA) was 9 %
#: slower shared.
SHARE_PRODUCTS_FROM = 8


class _LaneDotIncBuilder(DotIncBuilder):
    """NengoDL's ``DotInc`` builder for lane graphs: no transposes, shared forward.

    For a weight ``A`` shared by all lanes and a per-lane input ``X``, NengoDL
    computes ``transpose(A @ transpose(X))``, and the backward pass transposes twice
    more: with hundreds of lanes those transposes took 40 % of a pass of our
    benchmark network (2 × 1000 neurons). For a single operator ``X @ Aᵀ`` is the
    same product with the lanes already leading (rounding may differ in the last
    bit). Merged groups keep NengoDL's product.

    When the lane graph gives lane slots (`LaneGraph.run`), lanes of one slot hold
    the same ``X``, and the product is computed once per slot (`share_linear`) if
    there are at least `SHARE_PRODUCTS_FROM` lanes per slot.
    """

    lane_graph = None

    def build_step(self, signals):
        """``Y += X Aᵀ``, once per slot where the lane graph gives slots."""
        if self.A_data.minibatched:
            return super().build_step(signals)
        A = signals.gather(self.A_data)
        X = signals.gather(self.X_data)
        share = self.lane_graph.share if self.lane_graph is not None else None
        product = self._product if len(self.ops) == 1 else self._merged_product
        if share is None or X.shape[0] < SHARE_PRODUCTS_FROM * share[0].shape[0]:
            dot = product(X, A)
        else:
            dot = share_linear(product, X, A, *share)
        signals.scatter(self.Y_data, dot, mode=self.mode)

    @staticmethod
    def _product(X, A):
        # (lanes, 1, a1) x (1, a0, a1) -> (lanes, 1, a0)
        return tf.matmul(X[:, 0], A[0], transpose_b=True)[:, None]

    def _merged_product(self, X, A):
        # NengoDL's: (n_ops, a0, a1) x (n_ops, a1, lanes) -> (lanes, n_ops, a0)
        dot = tf.transpose(tf.matmul(A, tf.transpose(X, perm=self.perm)), self.perm_inv)
        # the transposes lose the static shape (as NengoDL notes)
        dot.set_shape((X.shape[0], *A.shape[:2]))
        return dot


def share_linear(
    fn, X: tf.Tensor, A: tf.Tensor, first: tf.Tensor, slot: tf.Tensor
) -> tf.Tensor:
    """A product ``fn(X, A)``, linear in ``X``, computed once per group of lanes.

    As in `share_neurons`, lanes ``l`` with the same ``slot[l]`` hold the same ``X``
    in the forward pass, so ``fn`` runs on one representative row per slot and the
    result is gathered back: for a weight matrix the lanes' matrix product (the
    bulk of the forward pass) becomes one row per item. The gradient is per lane and
    exact: ``fn`` is linear in ``X``, so its gradient w.r.t. ``X`` does not depend on
    ``X``, and its gradient w.r.t. ``A`` is taken at the lanes' values, which equal
    their representatives'.

    Parameters
    ----------
    fn : callable
        ``fn(X, A)``, linear in ``X``, whose rows are the lanes (e.g. a matrix
        product); differentiable w.r.t. both.
    X : tf.Tensor
        ``(n_lanes, ...)`` input.
    A : tf.Tensor
        The weight, shared by all lanes.
    first, slot : tf.Tensor
        As for `share_neurons`.

    Returns
    -------
    tf.Tensor
        ``fn(X, A)``, to float32 rounding.

    Examples
    --------
    Four lanes replaying two items (slots 0, 1, 0, 1); the product runs on two rows:

    >>> import numpy as np, tensorflow as tf
    >>> from nengo_jacobian.lanes import share_linear
    >>> X = tf.constant([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [3.0, 4.0]])
    >>> A = tf.constant([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    >>> first, slot = tf.constant([0, 1]), tf.constant([0, 1, 0, 1])
    >>> product = lambda x, a: tf.matmul(x, a, transpose_b=True)
    >>> with tf.GradientTape(persistent=True) as tape:
    ...     tape.watch([X, A])
    ...     y = share_linear(product, X, A, first, slot)
    ...     objective = tf.reduce_sum(y * tf.reshape(tf.range(12.0), (4, 3)))
    >>> bool(np.allclose(y, product(X, A)))
    True
    >>> with tf.GradientTape(persistent=True) as reference:
    ...     reference.watch([X, A])
    ...     expected = tf.reduce_sum(product(X, A) * tf.reshape(tf.range(12.0), (4, 3)))
    >>> [bool(np.allclose(tape.gradient(objective, v), reference.gradient(expected, v)))
    ...  for v in (X, A)]
    [True, True]
    """

    @tf.custom_gradient
    def shared(X, A):
        representatives = tf.gather(X, first)

        def grad(dy):
            # tensors of this graph, as in share_neurons: inside a while loop's
            # gradient the forward tensors are captured, and the tape must watch
            # what fn reads. The lanes' X is rebuilt from the representatives the
            # forward pass kept; only the gradient w.r.t. A reads it (fn is linear)
            weight = tf.identity(A)
            lanes = tf.gather(tf.identity(representatives), slot)
            with tf.GradientTape() as tape:
                tape.watch([lanes, weight])
                y = fn(lanes, weight)
            return tape.gradient(y, [lanes, weight], output_gradients=dy)

        return tf.gather(fn(representatives, A), slot), grad

    return shared(X, A)


def share_neurons(fn, J: tf.Tensor, first: tf.Tensor, slot: tf.Tensor) -> tf.Tensor:
    """An elementwise ``fn(J)`` computed once per group of identical lanes.

    Lanes ``l`` with the same ``slot[l]`` hold the same ``J`` in the forward pass, so
    ``fn`` runs on one representative lane per slot (``first[slot]``) and the result
    is gathered back. The gradient stays per lane: lane ``l`` receives
    ``dy[l] · fn'(J[first[slot[l]]])``, which equals ``dy[l] · fn'(J[l])`` because
    the two lanes' ``J`` are equal. The derivative is recomputed inside the gradient
    from the representatives' ``J``, so second derivatives (gradients of Jacobians
    w.r.t. weights, which every lane of a slot shares) are exact as well, and the
    backward pass keeps one row of ``J`` per slot and step, not one per lane.

    Parameters
    ----------
    fn : callable
        Elementwise function of a ``(n_slots, n)`` tensor, e.g. a neuron type's rate.
    J : tf.Tensor
        ``(n_lanes, n)`` input.
    first : tf.Tensor
        ``(n_slots,)`` int32: one lane of each slot.
    slot : tf.Tensor
        ``(n_lanes,)`` int32: each lane's slot.

    Returns
    -------
    tf.Tensor
        ``(n_lanes, n)``: ``fn(J)``, to float32 rounding.

    Examples
    --------
    Four lanes replaying two items (slots 0, 1, 0, 1); ``tf.exp`` runs on two rows:

    >>> import numpy as np, tensorflow as tf
    >>> from nengo_jacobian.lanes import share_neurons
    >>> J = tf.constant([[0.0, 1.0], [2.0, 3.0], [0.0, 1.0], [2.0, 3.0]])
    >>> first, slot = tf.constant([0, 1]), tf.constant([0, 1, 0, 1])
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(J)
    ...     y = share_neurons(tf.exp, J, first, slot)
    ...     # a different cotangent per lane
    ...     objective = tf.reduce_sum(y * tf.constant([[1.0], [2.0], [3.0], [4.0]]))
    >>> bool(np.allclose(y, tf.exp(J)))
    True
    >>> grad = tape.gradient(objective, J)  # per lane: cotangent · exp(J)
    >>> bool(np.allclose(grad, [[1], [2], [3], [4]] * np.exp(J.numpy())))
    True
    """

    @tf.custom_gradient
    def shared(J):
        # the backward pass keeps these rows of J per step, not all lanes' rows
        representatives = tf.gather(J, first)

        def grad(dy):
            # a tensor of this graph: in a gradient's own while loop (second order)
            # `representatives` is captured, and the tape must watch what fn reads
            rows = tf.identity(representatives)
            with tf.GradientTape() as tape:
                tape.watch(rows)
                values = fn(rows)
            # fn is elementwise: the gradient of its sum is its own derivative
            derivative = tape.gradient(values, rows)
            return dy * tf.gather(derivative, slot)

        return tf.gather(fn(representatives), slot), grad

    return shared(J)


class _LaneNeuronsBuilder(SimNeuronsBuilder):
    """NengoDL's neuron builder, with nonlinearities shared by identical lanes.

    In rate mode a neuron group's output is an elementwise function of its input
    current (spiking types' states are held constant), so when the lane graph is
    given lane slots (`LaneGraph.run`) the function is evaluated once per slot with
    `share_neurons`: at 2 × 200 LIF neurons, 20 steps and 80 lanes of one item this
    made a whole forward and backward pass 2.2× faster with XLA and 1.7× without
    (2 × 1000 neurons, 50 steps, 200 lanes: 2.9× and 2.0×).
    """

    lane_graph = None

    def build_step(self, signals):
        """NengoDL's step, or the shared one when the lane graph gives slots."""
        neurons = self.built_neurons
        share = self.lane_graph.share if self.lane_graph is not None else None
        state = neurons.state_data
        rate_mode = neurons.config.training is True  # a Python bool: traced as such
        if share is None or not rate_mode or (state and not neurons.spiking):
            # an unshared pass, or a neuron whose state evolves per lane
            return super().build_step(signals)
        first, slot = share
        J = signals.gather(neurons.J_data)
        states = [signals.gather(d) for d in state.values()]
        few = copy.copy(neurons)
        if hasattr(neurons, "zeros"):
            # LIFRate's zeros are minibatch-shaped; the shared step has n_slots rows
            few.zeros = tf.zeros(
                (first.shape[0],) + tuple(neurons.J_data.shape), signals.dtype
            )

        def rate(j):
            if not neurons.spiking:
                return few.step(j, signals.dt)
            # rate mode (NengoDL's training_step): the states do not change
            kwargs = {k: tf.gather(v, first) for k, v in zip(state, states)}
            return few.training_step(j, signals.dt, **kwargs)

        signals.scatter(neurons.output_data, share_neurons(rate, J, first, slot))
        for data, value in zip(state.values(), states):
            signals.scatter(data, value)


class Taps(collections.namedtuple("Taps", "values rows")):
    """The tapped signals of a `LaneGraph.run`.

    Lanes that replay the same item record the same taps (their forward passes are
    equal), so with lane slots a tap keeps one row per slot, not per lane: with
    XLA, per-lane taps of 2 × 200 neurons over 80 lanes made a weight Jacobian
    2.3× slower (their step arrays are copied every step).

    Attributes
    ----------
    values : list of tf.Tensor
        One ``(n_rows, n_steps, *signal_shape)`` tensor per tap; ``n_rows`` is 1 for a
        signal that is not minibatched.
    rows : tf.Tensor or None
        ``(n_lanes,)`` int32: the row of ``values`` that holds each lane's taps. None:
        rows are lanes (or a single row shared by all).

    Examples
    --------
    Four lanes replaying two items (slots 0, 1, 0, 1), one step of a 1-d signal:

    >>> import tensorflow as tf
    >>> from nengo_jacobian.lanes import Taps
    >>> taps = Taps([tf.constant([[[10.0]], [[20.0]]])], tf.constant([0, 1, 0, 1]))
    >>> taps.lane(0).numpy().ravel()
    array([10., 20., 10., 20.], dtype=float32)
    """

    def lane(self, index: int) -> tf.Tensor:
        """Tap ``index`` with one row per lane, or a single row shared by all."""
        value = self.values[index]
        if self.rows is None or value.shape[0] == 1:
            return value
        return tf.gather(value, self.rows)


class _Piece(
    collections.namedtuple("_Piece", "start stop source_key source_rows minibatched")
):
    """Rows ``start:stop`` of a lane-graph base array and where their values live."""


def _step_array(x: tf.Tensor) -> tf.TensorArray:
    """``(steps, ...)`` as a TensorArray of ``steps`` items."""
    # a static size where known: XLA needs fixed-size TensorArrays
    size = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
    return tf.TensorArray(x.dtype, size=size).unstack(x)


def _time_major(x: tf.Tensor) -> tf.TensorArray:
    """``(lanes, steps, ...)`` as a TensorArray of ``steps`` items."""
    return _step_array(tf.transpose(x, [1, 0, *range(2, len(x.shape))]))


class _FixedLoopTF:
    """``tensorflow`` as NengoDL's loop builder sees it, with the step count fixed.

    NengoDL collects probe data in dynamically sized TensorArrays inside an unbounded
    ``tf.while_loop``, which XLA refuses ("XLA compilation requires a fixed tensor
    list size"). A lane graph always knows its number of steps, so while it is built
    NengoDL's module sees this stand-in: fixed-size arrays and a bounded loop, the
    same values with or without XLA.
    """

    def __init__(self, n_steps: int, probe_sizes: Sequence[int]):
        self.n_steps = int(n_steps)
        # NengoDL makes one TensorArray per probe, in probe order (its only
        # TensorArrays); a keep_history=False probe writes one item only
        self._sizes = iter(probe_sizes)

    def __getattr__(self, name):
        return getattr(tf, name)

    def TensorArray(self, dtype, size=0, dynamic_size=False, **kwargs):  # noqa: N802
        """The next probe's TensorArray, of exactly as many items as it records."""
        return tf.TensorArray(
            dtype, size=next(self._sizes), dynamic_size=False, **kwargs
        )

    def while_loop(self, *args, **kwargs):
        """``tf.while_loop`` bounded by ``n_steps`` iterations."""
        kwargs.setdefault("maximum_iterations", self.n_steps)
        return tf.while_loop(*args, **kwargs)


@contextlib.contextmanager
def _fixed_loop(n_steps: int, probe_sizes: Sequence[int]):
    """Let NengoDL's graph builder see `_FixedLoopTF` while a lane graph is built."""
    module = nengo_dl.tensor_graph
    original = module.tf
    module.tf = _FixedLoopTF(n_steps, probe_sizes)
    try:
        yield
    finally:
        module.tf = original


class _StepReader:
    """Stands in for an input tensor ``x`` where NengoDL reads ``x[:, step]``."""

    def __init__(self, steps: tf.TensorArray):
        self.steps = steps

    def __getitem__(self, index):
        _, step = index
        return self.steps.read(step)


class LaneGraph(TensorGraph):
    """A `~nengo_dl.tensor_graph.TensorGraph` of ``sim.model`` with ``n_lanes`` lanes.

    Parameters
    ----------
    sim : nengo_jacobian.Simulator
        The simulator whose model, weights and state the lanes replay.
    n_lanes : int
        Minibatch size of the lane graph.
    perturbed : sequence of nengo.builder.Signal
        Signals that receive an additive per-lane input, in order; the inputs'
        values are passed to `run`.
    taps : sequence of nengo.builder.Signal
        Signals recorded at every step; their outputs follow the user's probes.
    """

    @compat.trackable.no_automatic_dependency_tracking
    def __init__(
        self,
        sim,
        n_lanes: int,
        perturbed: Sequence[Signal] = (),
        taps: Sequence[Signal] = (),
    ):
        source = sim.tensor_graph
        model = copy.copy(sim.model)
        # Private copies of the containers we extend; the user's model is not touched.
        model.sig = collections.defaultdict(dict, sim.model.sig)
        model.seeds = dict(sim.model.seeds)
        model.operators = list(sim.model.operators)
        model.probes = list(sim.model.probes)

        self.perturb_ops = [
            Perturb(target, i, tag=f"perturb {target.name}")
            for i, target in enumerate(perturbed)
        ]
        model.operators.extend(self.perturb_ops)

        self.taps = [Tap(signal) for signal in taps]
        for tap in self.taps:
            model.sig[tap] = {"in": tap.signal}
            # NengoDL compares probe seeds with connection seeds to find probe
            # connections; a fresh object never equals any of them.
            model.seeds[tap] = object()
            model.probes.append(tap)

        # One step per loop iteration, so that the loop counter is the step index
        # that Perturb reads (unrolling changes speed, never results). The planner
        # and sorter only decide how signals are merged, never values (see
        # `lane_planner`); both know our Perturb operator, some others do not.
        top = model.toplevel
        planner = lane_planner(sim.model.operators)
        with (
            forced_setting(top, "simplifications", []),
            forced_setting(top, "use_loop", True),
            forced_setting(top, "planner", planner),
            forced_setting(top, "sorter", graph_optimizer.order_signals),
        ):
            super().__init__(
                model,
                source.dt,
                1,
                n_lanes,
                source.device,
                utils.NullProgressBar(),
                source.seed,
            )

        builds = self.op_builder.op_builds
        for ops, op_build in builds.items():
            if type(op_build) is DotIncBuilder:
                builds[ops] = _LaneDotIncBuilder(ops)
                builds[ops].lane_graph = self
            elif type(op_build) is SimNeuronsBuilder and isinstance(
                op_build.built_neurons, TFNeuronBuilder
            ):
                builds[ops] = _LaneNeuronsBuilder(ops)
                builds[ops].lane_graph = self
        #: Whether lanes of one item compute one forward pass, so that they may share
        #: neuron nonlinearities: not where NengoDL runs a neuron type in numpy, once
        #: per minibatch item (it may draw random numbers). numpy Processes, which get
        #: a random generator per item, never reach a lane graph (`lane_blockers`).
        self.shareable = not any(
            isinstance(op_build, SimNeuronsBuilder)
            and isinstance(op_build.built_neurons, GenericNeuronBuilder)
            for op_build in builds.values()
        )
        self.share = None
        self.source = source
        self.n_user_probes = len(sim.model.probes)
        for op in self.perturb_ops:
            op.lane_graph = self
        self.lane_rows = None
        self._perturbations = []
        self._perturbation_steps = []
        self._step = None
        self._layout = self._plan_layout()
        # Keras layers inside TensorNodes are shared with the user's graph. Listing
        # them as already ours stops TensorGraph.build from rebuilding them, which
        # would replace the user's layer weights with new variables.
        compat.sub_layers(self).extend(
            layer
            for layer in compat.sub_layers(source)
            if isinstance(layer, tf.keras.layers.Layer)
        )
        self.build(None)

    def _plan_layout(self) -> dict:
        """Map every row of every lane-graph base array to the user's variables."""
        user_signals = self.source.signals.sig_map
        user_vars = {**self.source.saved_state, **self.source.base_params}
        pieces = collections.defaultdict(list)
        for sig, tsig in self.signals.sig_map.items():
            if sig.is_view:
                continue
            ((start, stop),) = tsig.slices
            user_tsig = user_signals.get(sig)
            if user_tsig is not None and user_tsig.key in user_vars:
                rows = np.concatenate([np.arange(a, b) for a, b in user_tsig.slices])
                piece = _Piece(start, stop, user_tsig.key, rows, tsig.minibatched)
            else:
                # Signals whose initial value the user's graph does not keep, because
                # they are set before being read: any value will do.
                piece = _Piece(start, stop, None, None, tsig.minibatched)
            pieces[tsig.key].append(piece)
        layout = {}
        for key, key_pieces in pieces.items():
            # a base signal can be listed twice (e.g. under its reshaped twin); the
            # rows are what matters
            unique = {(p.start, p.stop): p for p in key_pieces}
            layout[key] = [unique[k] for k in sorted(unique)]
        return layout

    def _assemble(self, key, like: tf.Variable) -> tf.Tensor:
        """The current value of one base array, read from the user's variables."""
        user_vars = {**self.source.saved_state, **self.source.base_params}
        minibatched = len(like.shape) > 0 and self._layout[key][0].minibatched
        axis = 1 if minibatched else 0
        parts = []
        for piece in self._layout[key]:
            n_rows = piece.stop - piece.start
            if piece.source_key is None:
                shape = list(like.shape)
                shape[axis] = n_rows
                parts.append(tf.zeros(shape, like.dtype))
                continue
            value = tf.gather(user_vars[piece.source_key], piece.source_rows, axis=axis)
            if minibatched:
                # Lane l replays item lane_rows[l] of the user's minibatch.
                value = tf.gather(value, self.lane_rows, axis=0)
            parts.append(value)
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=axis)

    @contextlib.contextmanager
    def _live_values(self):
        """Temporarily replace our own variables by the user's live values."""
        saved_state, base_params = self.saved_state, self.base_params
        with compat.trackable.no_automatic_dependency_tracking_scope(self):
            self.saved_state = {k: self._assemble(k, v) for k, v in saved_state.items()}
            self.base_params = {k: self._assemble(k, v) for k, v in base_params.items()}
        try:
            yield
        finally:
            with compat.trackable.no_automatic_dependency_tracking_scope(self):
                self.saved_state, self.base_params = saved_state, base_params

    @contextlib.contextmanager
    def _step_inputs(self):
        """Feed inputs through TensorArrays, one read per step.

        NengoDL reads step ``i`` of an input as ``x[:, i]``. Inside a while loop the
        gradient of that slice is a dense ``x``-sized tensor per step, which costs
        O(n_steps²) for long inputs such as our perturbations; the gradient of a
        TensorArray read is just the step's slice.
        """
        node_inputs = self.node_inputs
        readers = {node: _StepReader(_time_major(x)) for node, x in node_inputs.items()}
        with compat.trackable.no_automatic_dependency_tracking_scope(self):
            self.node_inputs = readers
        try:
            yield
        finally:
            with compat.trackable.no_automatic_dependency_tracking_scope(self):
                self.node_inputs = node_inputs

    def perturbation_step(self, index: int) -> tf.Tensor:
        """``(n_lanes, size)``: perturbation input ``index`` at the current step."""
        return self._perturbation_steps[index].read(self._step)

    def _build_loop(self, progress):
        # already time-major: a transposed copy of every perturbation (and of its
        # gradient) per pass cost more than the whole pass for large signals
        self._perturbation_steps = [_step_array(p) for p in self._perturbations]
        with self._live_values(), self._step_inputs():
            return super()._build_loop(progress)

    def _build_inner_loop(self, loop_i, update_probes, progress):
        self._step = loop_i
        if self.share is None:
            return super()._build_inner_loop(loop_i, update_probes, progress)
        first = self.share[0]
        minibatched = [
            isinstance(p, Tap) and self.model.sig[p]["in"].minibatched
            for p in self.model.probes
        ]

        def update_shared(probe_tensors, i):
            # lanes of a slot tap equal values: record one lane of each slot
            values = [
                tf.gather(value, first) if keep_one else value
                for value, keep_one in zip(probe_tensors, minibatched)
            ]
            return update_probes(values, i)

        return super()._build_inner_loop(loop_i, update_shared, progress)

    def run(
        self,
        inputs: Sequence[tf.Tensor],
        perturbations: Sequence[tf.Tensor],
        n_steps: int,
        lane_rows: tf.Tensor,
        n_run: tf.Tensor | None = None,
        slots: tuple[tf.Tensor, int] | None = None,
    ) -> tuple[list[tf.Tensor], Taps]:
        """Simulate all lanes in rate mode; call inside a ``tf.function``.

        Parameters
        ----------
        inputs : sequence of tf.Tensor
            One ``(n_lanes, n_steps, node.size_out)`` tensor per user input Node, in
            the order of ``sim.tensor_graph.invariant_inputs``.
        perturbations : sequence of tf.Tensor
            One ``(n_steps, n_lanes, signal.size)`` tensor per perturbed signal (time
            first, as the loop reads them).
        n_steps : int
            Number of steps to simulate.
        lane_rows : tf.Tensor
            ``(n_lanes,)`` int32: the item of the user's minibatch whose saved state
            each lane starts from.
        n_run : tf.Tensor, optional
            int32 scalar: simulate only the first ``n_run <= n_steps`` steps (the
            same traced graph serves every ``n_run``). Later steps of the probes and
            taps are zero, and so are the gradients w.r.t. later inputs: outputs
            never depend on later inputs. Defaults to ``n_steps``.
        slots : (tf.Tensor, int), optional
            ``(slot, n_slots)``: an ``(n_lanes,)`` int32 tensor of values below
            ``n_slots`` such that lanes with the same slot have the same inputs and
            state (e.g. the item they replay) and zero perturbations. Their neuron
            nonlinearities are then computed once per slot (`share_neurons`), with
            results the same to float32 rounding, and taps are recorded once per
            slot. Ignored unless there are fewer slots than lanes, and where lanes of
            one item differ (`shareable`).

        Returns
        -------
        probes : list of tf.Tensor
            The user's probes, each ``(n_lanes, n_steps, *probe_shape)``.
        taps : Taps
            The taps, per lane or per slot.
        """
        self.lane_rows = lane_rows
        self._perturbations = list(perturbations)
        self.share = None
        tap_rows = None
        if slots is not None and self.shareable and slots[1] < self.minibatch_size:
            slot, n_slots = slots
            hits = tf.equal(slot[None, :], tf.range(n_slots, dtype=slot.dtype)[:, None])
            # a lane of each slot (slots no lane holds get lane 0: computed, unused)
            first = tf.argmax(tf.cast(hits, tf.int32), axis=1, output_type=tf.int32)
            self.share = (first, tf.cast(slot, tf.int32))
            tap_rows = self.share[1]
        if n_run is None:
            n_run = tf.constant(n_steps, tf.int32)
        steps = tf.fill((self.minibatch_size, 1), n_run)
        sizes = [n_steps if self._keeps_history(p) else 1 for p in self.model.probes]
        try:
            with _fixed_loop(n_steps, sizes):
                outputs = self(
                    list(inputs) + [steps],
                    training=True,
                    stateful=False,
                )
        finally:
            self.share = None
        # NengoDL stacks probe data in a TensorArray, which loses the static number
        # of steps; restore it so that callers can use static shapes.
        shaped = []
        for value, size in zip(outputs[:-1], sizes):
            value.set_shape([value.shape[0], size, *value.shape[2:]])
            shaped.append(value)
        return shaped[: self.n_user_probes], Taps(
            shaped[self.n_user_probes :], tap_rows
        )

    def _keeps_history(self, probe) -> bool:
        return isinstance(probe, Tap) or dl_config.get_setting(
            self.model, "keep_history", True, obj=probe
        )
