"""Validate a Jacobian request: which probes, with respect to what, on which data.

Everything a user can get wrong is caught here, before TensorFlow sees it, with an error
that names the Nengo object, the rule and the way out.
"""

from __future__ import annotations

import collections
import copy
from dataclasses import dataclass, field

import nengo
import numpy as np
from nengo.ensemble import Neurons
from nengo_dl import config as dl_config
from nengo_dl.neuron_builders import SimNeuronsBuilder
from nengo_dl.process_builders import SimProcessBuilder
from nengo_dl.tensor_node import TensorNode

from nengo_jacobian.exceptions import (
    DataError,
    InferenceModeError,
    JacobianError,
    NotDifferentiableError,
    UnknownObjectError,
)
from nengo_jacobian.labels import WeightEntry, object_name
from nengo_jacobian.progress import track


class Hidden:
    """A hidden signal to differentiate with respect to, as an additive input.

    ``sim.jacobian(probe, Hidden(obj))`` is ∂probe/∂s(t) for a signal s inside the
    network: the derivative of the outputs w.r.t. a perturbation added to s at each
    step (where s is read after all operators that write it in that step). Its shape
    is ``(n_steps, size)``, like an input Node's.

    Parameters
    ----------
    obj : nengo.Ensemble, nengo.ensemble.Neurons, nengo.Connection or nengo.Node
        Whose signal:

        - Ensemble: the vector it represents (its input, before the encoders);
        - ``ens.neurons``: the neuron activities (rates in rate mode);
        - Connection: its output (weighted and filtered, before it enters ``post``);
        - Node with ``size_in > 0``: its output.

    Examples
    --------
    >>> import nengo, nengo_jacobian
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node([0.0])
    ...     hidden = nengo.Ensemble(10, 1, neuron_type=nengo.RectifiedLinear())
    ...     out = nengo.Node(size_in=1)
    ...     _ = nengo.Connection(stim, hidden, synapse=None)
    ...     _ = nengo.Connection(hidden, out, synapse=None)
    ...     probe = nengo.Probe(out, synapse=None)
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     J = sim.jacobian(probe, nengo_jacobian.Hidden(hidden), n_steps=3)
    >>> J.shape  # (minibatch, n_steps, probe dims, n_steps, hidden dims)
    (1, 3, 1, 3, 1)
    """

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other) -> bool:
        return isinstance(other, Hidden) and other.obj is self.obj

    def __hash__(self) -> int:
        return hash((Hidden, id(self.obj)))

    def __repr__(self) -> str:
        return f"Hidden({object_name(self.obj)})"

    def signal(self, sim):
        """The build signal this refers to in ``sim``'s model."""
        obj = self.obj
        if isinstance(obj, nengo.Ensemble):
            key, what = obj, "in"
        elif isinstance(obj, Neurons):
            key, what = obj, "out"
        elif isinstance(obj, nengo.Connection):
            key, what = obj, "weighted"
        elif isinstance(obj, nengo.Node) and obj.size_in > 0:
            key, what = obj, "out"
        else:
            raise JacobianError(
                f"Hidden({object_name(obj)}): a hidden signal belongs to an Ensemble "
                f"(its value), ens.neurons (activities), a Connection (its output) or "
                f"a Node with size_in > 0; for an input Node use the Node itself."
            )
        signal = sim.model.sig.get(key, {}).get(what)
        if signal is None or obj not in sim.weights.paths:
            raise UnknownObjectError(
                f"{object_name(obj)} is not part of this simulator's network."
            )
        if signal not in sim.tensor_graph.signals:
            raise JacobianError(
                f"Hidden({object_name(obj)}): NengoDL removed this signal from the "
                f"graph because nothing reads it, so no output depends on it."
            )
        return signal


@dataclass(frozen=True, eq=False)
class Target:
    """One thing to differentiate with respect to.

    Attributes
    ----------
    key : object
        What the user asked for (used as the key of a returned mapping).
    node : nengo.Node or None
        The input Node, for an input target.
    entry : WeightEntry or None
        The labelled weight, for a weight target.
    signal : nengo.builder.Signal or None
        The perturbed signal, for a `Hidden` target.
    name : str
        Readable name.
    obj : object
        The Nengo object the path check starts from.
    """

    key: object
    node: nengo.Node | None = None
    entry: WeightEntry | None = None
    signal: object = None
    name: str = ""
    obj: object = None

    @property
    def is_input(self) -> bool:
        """Whether this is an input Node."""
        return self.node is not None

    @property
    def identity(self) -> tuple:
        """Hashable identity for caches."""
        thing = self.node if self.node is not None else self.entry or self.signal
        return (type(thing).__name__, id(thing))


@dataclass(eq=False)
class Request:
    """A validated Jacobian request.

    Attributes
    ----------
    sim : nengo_jacobian.Simulator
    probes : list of nengo.Probe
    targets : list of Target
    inputs : list of numpy.ndarray
        One ``(n_items, n_steps, node.size_out)`` array per input Node of the network,
        in the order of ``sim.tensor_graph.invariant_inputs``.
    n_items : int
        Number of minibatch items in the data (a multiple of ``sim.minibatch_size``).
    n_steps : int
    probe_steps : list of int
        Number of output steps of each probe (1 with ``keep_history=False``).
    selected_steps : list of numpy.ndarray or None
        The output steps asked for, per probe (None: all).
    tied : bool
        Whether input and hidden targets are held constant over time.
    progress : bool or None
        Whether engines may show a progress bar for long work (see
        `nengo_jacobian.progress`).
    """

    sim: object
    probes: list
    targets: list
    inputs: list
    n_items: int
    n_steps: int
    probe_steps: list = field(default_factory=list)
    selected_steps: list | None = None
    tied: bool = False
    progress: bool | None = None

    def track(self, iterable, total: int | None = None):
        """Iterate over an engine's passes, with a progress bar if they take long."""
        return track(iterable, "Computing Jacobian", total, self.progress)

    @property
    def probe_sizes(self) -> list[int]:
        """Number of output dimensions of each probe."""
        return [int(p.size_in) for p in self.probes]

    @property
    def steps(self) -> list[np.ndarray]:
        """The output steps in the result, per probe."""
        if self.selected_steps is None:
            return [np.arange(n) for n in self.probe_steps]
        return self.selected_steps

    @property
    def rows(self) -> np.ndarray:
        """Which rows of the flattened, concatenated probe outputs are asked for."""
        rows, offset = [], 0
        for steps, all_steps, dims in zip(
            self.steps, self.probe_steps, self.probe_sizes
        ):
            rows.append(offset + (steps[:, None] * dims + np.arange(dims)).ravel())
            offset += all_steps * dims
        return np.concatenate(rows).astype(np.int32)

    @property
    def row_steps(self) -> np.ndarray:
        """How many simulation steps each requested row depends on (causality).

        Output step ``t`` of a probe that keeps its history needs steps ``0..t``; a
        probe with ``keep_history=False`` records the last step, which needs all.
        """
        needed = []
        for steps, all_steps, dims in zip(
            self.steps, self.probe_steps, self.probe_sizes
        ):
            step_count = steps + 1 if all_steps == self.n_steps else self.n_steps
            needed.append(np.repeat(np.broadcast_to(step_count, steps.shape), dims))
        return np.concatenate(needed).astype(np.int32)

    @property
    def n_rows(self) -> int:
        """Jacobian rows per item: selected output steps times dimensions."""
        return sum(len(t) * d for t, d in zip(self.steps, self.probe_sizes))

    def target_shape(self, target: Target) -> tuple:
        """Shape of one row of the Jacobian w.r.t. ``target``."""
        if target.is_input:
            return (self.n_steps, target.node.size_out)
        if target.signal is not None:
            return (self.n_steps, target.signal.size)
        return target.entry.shape


def as_list(value) -> tuple[list, bool]:
    """``(list of items, whether a single item was given)``."""
    if isinstance(value, (list, tuple)) and not _is_weight_tuple(value):
        return list(value), False
    return [value], True


def _is_weight_tuple(value) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[1], str)
        and not isinstance(value[0], str)
    )


def resolve_probes(sim, of) -> tuple[list, bool]:
    """Check that every item of ``of`` is a probe of this simulator."""
    probes, single = as_list(of)
    if not probes:
        raise JacobianError("`of` is empty: give at least one nengo.Probe.")
    known = {sim.get_name(p): p for p in sim.model.probes}
    resolved = []
    for p in probes:
        if isinstance(p, str) and p in known:
            p = known[p]
        if not isinstance(p, nengo.Probe) or p not in sim.model.probes:
            what = f"Probe {object_name(p)}" if isinstance(p, nengo.Probe) else repr(p)
            raise UnknownObjectError(
                f"{what} is not a probe of this simulator's network; `of` takes "
                f"probes of the network the Simulator was built from: "
                f"{sorted(known) or '(the network has no probes)'}"
            )
        resolved.append(p)
    return resolved, single


def resolve_targets(sim, wrt) -> tuple[list[Target], bool]:
    """Turn ``wrt`` into Targets: input Nodes or labelled weights."""
    items, single = as_list(wrt)
    if not items:
        raise JacobianError("`wrt` is empty: give an input Node or a weight.")
    inputs = {sim.get_name(n): n for n in sim.tensor_graph.invariant_inputs}
    targets = []
    for item in items:
        if isinstance(item, str) and item in inputs:
            node = inputs[item]
            targets.append(Target(item, node=node, name=object_name(node), obj=node))
        elif isinstance(item, nengo.Node):
            node = _check_input_node(sim, item, inputs)
            targets.append(Target(item, node=node, name=object_name(item), obj=node))
        elif isinstance(item, Hidden):
            targets.append(
                Target(item, signal=item.signal(sim), name=repr(item), obj=item.obj)
            )
        elif isinstance(item, nengo.Probe):
            raise JacobianError(
                f"Probe {object_name(item)} was given as `wrt`; probes are outputs "
                f"(`of`). Differentiate with respect to an input Node or a weight."
            )
        else:
            entry = sim.weights.resolve(item)
            start = entry.obj.neurons if entry.attr == "scaled_encoders" else entry.obj
            targets.append(Target(item, entry=entry, name=entry.name, obj=start))
    return targets, single


def _check_input_node(sim, node, inputs) -> nengo.Node:
    if node in sim.tensor_graph.invariant_inputs:
        return node
    name = object_name(node)
    if node not in sim.weights.paths:
        raise UnknownObjectError(
            f"Node {name} is not part of this simulator's network; input Nodes: "
            f"{sorted(inputs) or '(none)'}"
        )
    kind = "a TensorNode" if isinstance(node, TensorNode) else f"size_in={node.size_in}"
    raise JacobianError(
        f"Node {name} is not an input Node ({kind}): Jacobians w.r.t. a Node are "
        f"w.r.t. the values fed to it as data, which only input Nodes (size_in=0) "
        f"have. Input Nodes: {sorted(inputs) or '(none)'}"
    )


def prepare_inputs(sim, data, n_steps) -> tuple[list[np.ndarray], int, int]:
    """Standardize ``data`` as `nengo_dl.Simulator.predict` does, with clear errors.

    Returns
    -------
    inputs : list of numpy.ndarray
        One array per input Node, in ``sim.tensor_graph.invariant_inputs`` order.
    n_items : int
    n_steps : int
    """
    nodes = list(sim.tensor_graph.invariant_inputs)
    names = {sim.get_name(n): n for n in nodes}
    dtype = np.dtype(sim.tensor_graph.dtype)
    if data is None:
        data = {}
    elif isinstance(data, (np.ndarray, list)):
        if len(nodes) != 1:
            raise DataError(
                f"`data` is a single array but the network has {len(nodes)} input "
                f"Nodes; pass a dict {{node: array}} for: {sorted(names) or '(none)'}"
            )
        data = {nodes[0]: data}
    elif not isinstance(data, dict):
        raise DataError(
            f"`data` must be a dict {{input Node: array}} or an array, got "
            f"{type(data).__name__}."
        )
    given = {}
    for key, value in data.items():
        node = names.get(key) if isinstance(key, str) else key
        if node not in nodes:
            what = repr(key) if isinstance(key, str) else object_name(key)
            raise UnknownObjectError(
                f"`data` has an entry for {what}, "
                f"which is not an input Node of this network; input Nodes: "
                f"{sorted(names) or '(none)'}"
            )
        value = np.asarray(value)
        label = object_name(node)
        if value.ndim != 3 or value.shape[2] != node.size_out:
            raise DataError(
                f"`data` for Node {label} has shape {value.shape}; it must be "
                f"(n_items, n_steps, {node.size_out}) (n_items a multiple of "
                f"minibatch_size={sim.minibatch_size})."
            )
        if not np.all(np.isfinite(value)):
            raise DataError(f"`data` for Node {label} contains NaN or inf values.")
        given[node] = value.astype(dtype, copy=False)
    shapes = {v.shape[:2] for v in given.values()}
    if len(shapes) > 1:
        raise DataError(
            "`data` arrays disagree on (n_items, n_steps): "
            + ", ".join(f"{object_name(n)}: {v.shape[:2]}" for n, v in given.items())
        )
    n_items, data_steps = shapes.pop() if shapes else (sim.minibatch_size, None)
    if n_steps is None:
        if data_steps is None:
            raise DataError(
                "Give `n_steps` or `data` (the number of steps is taken from the data)."
            )
        n_steps = data_steps
    elif data_steps is not None and data_steps != n_steps:
        raise DataError(
            f"n_steps={n_steps} but the `data` arrays have {data_steps} steps."
        )
    if int(n_steps) < 1:
        raise DataError(f"n_steps must be at least 1, got {n_steps}.")
    if n_items == 0 or n_items % sim.minibatch_size:
        raise DataError(
            f"`data` has {n_items} items but the simulator was built with "
            f"minibatch_size={sim.minibatch_size}: give a multiple of "
            f"{sim.minibatch_size} items (each group of {sim.minibatch_size} starts "
            f"from the simulator's saved state, as in sim.predict)."
        )
    # Process-driven input Nodes keep their random state in step functions that
    # generating inputs advances; generate from a copy so that the simulator's next
    # predict or run sees the same inputs as it would have without this request.
    saved_cells = _snapshot_closures(sim.tensor_graph.input_funcs)
    try:
        generated = sim._generate_inputs(
            {sim.get_name(n): v for n, v in given.items()}, n_steps=int(n_steps)
        )
    finally:
        for cell, value in saved_cells:
            cell.cell_contents = value
    inputs = [np.asarray(generated[sim.get_name(n)], dtype=dtype) for n in nodes]
    return inputs, int(n_items), int(n_steps)


def _snapshot_closures(input_funcs: dict) -> list:
    """Copies of the closure variables of input step functions, to restore later.

    A Process's step function keeps its random generator and state in its closure.
    """
    saved = []
    for funcs in input_funcs.values():
        for func in funcs if isinstance(funcs, list) else ():
            for cell in getattr(func, "__closure__", None) or ():
                try:
                    saved.append((cell, copy.deepcopy(cell.cell_contents)))
                except Exception:  # noqa: BLE001 - an empty or uncopyable cell
                    continue
    return saved


def check_rate_mode(sim) -> None:
    """Refuse settings under which NengoDL cannot run the rate-mode (training) graph."""
    model = sim.model
    spiking = [
        ens
        for ens in (model.toplevel.all_ensembles if model.toplevel else [])
        if getattr(ens.neuron_type, "spiking", False)
    ]
    if dl_config.get_setting(model, "inference_only", False):
        raise InferenceModeError(
            "The network was built with nengo_dl.configure_settings("
            "inference_only=True), which builds no training-mode (rate) graph, so "
            "NengoDL cannot differentiate it"
            + (
                f" (spiking ensembles such as Ensemble {object_name(spiking[0])} "
                f"would give zero gradients)"
                if spiking
                else ""
            )
            + ". Remove inference_only=True."
        )
    if spiking and dl_config.get_setting(model, "learning_phase", None) is False:
        raise InferenceModeError(
            f"nengo_dl.configure_settings(learning_phase=False) forces inference mode, "
            f"where spiking neurons (e.g. in Ensemble {object_name(spiking[0])}) pass "
            f"no gradient and every Jacobian would be zero. Remove that setting: "
            f"Jacobians are taken of the rate-mode network (LIF -> LIFRate)."
        )


# ---- differentiable-path check ----------------------------------------------------
def _vertex(obj):
    return obj.obj if isinstance(obj, nengo.base.ObjView) else obj


def _numpy_process(process) -> bool:
    """Whether NengoDL runs ``process`` in numpy (it has no TensorFlow builder)."""
    return (
        isinstance(process, nengo.Process)
        and type(process) not in SimProcessBuilder.TF_PROCESS_IMPL
    )


def _blockers(network) -> dict:
    """Graph vertices whose output TensorFlow cannot differentiate, with reasons."""
    blockers = {}
    for node in network.all_nodes:
        if isinstance(node, TensorNode) or node.size_in == 0 or node.output is None:
            continue
        if isinstance(node.output, nengo.Process):
            if not _numpy_process(node.output):
                continue
            reason = f"its Process {type(node.output).__name__} runs in numpy"
        else:
            reason = "it runs a Python function"
        blockers[node] = reason
    for conn in network.all_connections:
        if isinstance(_vertex(conn.pre), nengo.Node) and conn.function is not None:
            blockers[conn] = "its `function` is a Python function applied to a Node"
    for ens in network.all_ensembles:
        if isinstance(ens.neuron_type, nengo.Direct):
            blockers[ens] = "it is a Direct-mode ensemble (a Python function)"
        elif type(ens.neuron_type) not in SimNeuronsBuilder.TF_NEURON_IMPL:
            blockers[ens.neurons] = (
                f"its neuron type {type(ens.neuron_type).__name__} has no TensorFlow "
                f"implementation in NengoDL"
            )
    return blockers


def non_tensorflow_objects(sim) -> list[tuple]:
    """``(object, name, reason)`` for every object NengoDL runs outside TensorFlow."""
    network = sim.model.toplevel
    if network is None:
        return []
    return [
        (obj, object_name(obj), reason) for obj, reason in _blockers(network).items()
    ]


def lane_blockers(sim) -> list[str]:
    """Why the lane engines cannot replay this network (empty if they can).

    NengoDL runs a Process without a TensorFlow implementation inside the network
    (an Ensemble's ``noise``, a Node whose output is such a Process and which has an
    input) in numpy, with its own random generator for every minibatch item. Lanes
    replay each item many times, so they cannot reproduce the user's realisation of
    it; only the reference loop, which runs the user's own graph, can.

    Returns
    -------
    list of str
        One description per such object, e.g. ``"Ensemble a: its noise WhiteNoise
        runs in numpy"``.

    Examples
    --------
    >>> import nengo, nengo_jacobian
    >>> from nengo_jacobian.request import lane_blockers
    >>> with nengo.Network(seed=0) as net:
    ...     noise = nengo.processes.WhiteNoise(seed=1)
    ...     ens = nengo.Ensemble(10, 1, noise=noise, label="a")
    ...     quiet = nengo.Ensemble(10, 1, label="b")  # no noise: lanes can replay it
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     lane_blockers(sim)
    ['Ensemble a: its noise WhiteNoise runs in numpy']
    """
    network = sim.model.toplevel
    if network is None:
        return []
    found = [
        f"Ensemble {object_name(ens)}: its noise {type(ens.noise).__name__} runs in "
        f"numpy"
        for ens in network.all_ensembles
        if _numpy_process(ens.noise)
    ]
    found += [
        f"Node {object_name(node)}: its Process {type(node.output).__name__} runs in "
        f"numpy"
        for node in network.all_nodes
        if node.size_in > 0 and _numpy_process(node.output)
    ]
    return found


def _graph(network):
    forward = collections.defaultdict(set)
    for ens in network.all_ensembles:
        forward[ens].add(ens.neurons)
        forward[ens.neurons].add(ens)
    for conn in network.all_connections:
        forward[_vertex(conn.pre)].add(conn)
        post = _vertex(conn.post)
        forward[conn].add(post)
        if isinstance(post, nengo.connection.LearningRule):
            forward[post].add(post.connection)
    return forward


def _reach(graph, start):
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def check_differentiable(sim, probes, targets) -> None:
    """Raise if a non-differentiable object lies between a target and a probe."""
    network = sim.model.toplevel
    if network is None:
        return
    blockers = _blockers(network)
    if not blockers:
        return
    forward = _graph(network)
    backward = collections.defaultdict(set)
    for a, nexts in forward.items():
        for b in nexts:
            backward[b].add(a)
    for target in targets:
        downstream = _reach(forward, target.obj)
        for probe in probes:
            upstream = _reach(backward, _vertex(probe.target))
            on_path = [b for b in blockers if b in downstream and b in upstream]
            if on_path:
                b = on_path[0]
                kind = type(b).__name__
                raise NotDifferentiableError(
                    f"{kind} {object_name(b)} lies between {target.name} and Probe "
                    f"{object_name(probe)}, and TensorFlow cannot differentiate it: "
                    f"{blockers[b]}, so the gradient would silently be None. Replace "
                    f"it by a nengo_dl.TensorNode written with TensorFlow ops (wrap "
                    f"numpy code in tf.custom_gradient to supply its Jacobian), or "
                    f"ask for a Jacobian that does not pass through it."
                )


def build_request(sim, of, wrt, data, n_steps) -> tuple[Request, bool, bool]:
    """Validate everything and return ``(request, single probe?, single wrt?)``."""
    probes, single_probe = resolve_probes(sim, of)
    targets, single_target = resolve_targets(sim, wrt)
    check_rate_mode(sim)
    check_differentiable(sim, probes, targets)
    inputs, n_items, n_steps = prepare_inputs(sim, data, n_steps)
    probe_steps = [
        n_steps if dl_config.get_setting(sim.model, "keep_history", True, obj=p) else 1
        for p in probes
    ]
    request = Request(sim, probes, targets, inputs, n_items, n_steps, probe_steps)
    return request, single_probe, single_target
