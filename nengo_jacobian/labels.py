"""Which weight is which: Nengo object and attribute ⇄ rows of merged variables.

NengoDL merges the parameters of many objects into a few ``tf.Variable`` s whose names
are not unique and whose row order can differ between processes. Everything here is
computed at run time from ``sim.tensor_graph.signals``, and weights are saved by a
stable *path* of the object inside the network (``"networks[0].connections[2]"``),
never by position in a variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import nengo
import numpy as np
import tensorflow as tf
from nengo.ensemble import Neurons

from nengo_jacobian.exceptions import (
    NoWeightsError,
    UnknownObjectError,
    WeightFileError,
)

#: Attribute names a user may write, mapped to the attribute we store.
ATTRIBUTE_ALIASES = {"encoders": "scaled_encoders"}

#: The Nengo build signal (``model.sig[obj][key]``) behind each attribute.
SIGNAL_KEYS = {"scaled_encoders": "encoders", "bias": "bias", "weights": "weights"}


def object_paths(network: nengo.Network) -> dict:
    """Stable addresses of every object in ``network``.

    The address is the object's position in the network hierarchy, e.g.
    ``"networks[1].ensembles[0]"`` or ``"ensembles[2].neurons"``. It depends only on
    the order in which the model code creates objects, so it is the same in every
    process that runs the same model code.

    Parameters
    ----------
    network : nengo.Network
        The top-level network.

    Returns
    -------
    dict
        ``{nengo object: path string}``.
    """
    paths = {}

    def visit(net, prefix):
        for kind in ("ensembles", "nodes", "connections", "probes"):
            for i, obj in enumerate(getattr(net, kind)):
                paths[obj] = f"{prefix}{kind}[{i}]"
                if isinstance(obj, nengo.Ensemble):
                    paths[obj.neurons] = f"{prefix}{kind}[{i}].neurons"
        for i, sub in enumerate(net.networks):
            paths[sub] = f"{prefix}networks[{i}]"
            visit(sub, f"{prefix}networks[{i}].")

    visit(network, "")
    return paths


def object_name(obj, paths: dict | None = None) -> str:
    """A short readable name for a Nengo object: its label, or its type and path.

    Parameters
    ----------
    obj : nengo object
        An Ensemble, Neurons, Node, Connection or Probe (or a slice of one).
    paths : dict, optional
        Output of `object_paths`, used for objects without a label.

    Returns
    -------
    str
    """
    if isinstance(obj, nengo.base.ObjView):
        return f"{object_name(obj.obj, paths)}[{_slice_text(obj.slice)}]"
    if isinstance(obj, Neurons):
        return f"{object_name(obj.ensemble, paths)}.neurons"
    if isinstance(obj, nengo.Connection):
        if obj.label is not None:
            return obj.label
        return f"{object_name(obj.pre, paths)}->{object_name(obj.post, paths)}"
    if getattr(obj, "label", None) is not None:
        return obj.label
    if paths is not None and obj in paths:
        return f"{type(obj).__name__}@{paths[obj]}"
    return f"{type(obj).__name__}@{id(obj):x}"


def _slice_text(sl) -> str:
    if isinstance(sl, slice):
        start = "" if sl.start is None else sl.start
        stop = "" if sl.stop is None else sl.stop
        step = "" if sl.step in (None, 1) else f":{sl.step}"
        return f"{start}:{stop}{step}"
    return ",".join(str(i) for i in np.atleast_1d(sl))


class WeightEntry:
    """One labelled weight tensor of a built network.

    Parameters
    ----------
    obj : nengo.Ensemble or nengo.ensemble.Neurons or nengo.Connection
        The Nengo object the weight belongs to.
    attr : str
        ``"scaled_encoders"`` (an Ensemble's encoders multiplied by gain / radius, which
        is what NengoDL stores and trains), ``"bias"`` (a Neurons object's biases) or
        ``"weights"`` (a Connection's weights: decoders·transform for a decoded
        connection, the transform otherwise).
    name : str
        Readable unique name, e.g. ``"a.scaled_encoders"`` or ``"a->b.weights"``.
    path : str
        Stable address of ``obj`` in the network (see `object_paths`).
    signal : nengo.builder.Signal
        The build signal holding the weight.
    variable : tf.Variable
        NengoDL's (possibly merged) variable that holds the weight.
    rows : numpy.ndarray
        Row indices of the weight inside ``variable`` (axis 0).
    trainable : bool
        Whether NengoDL trains this weight (``variable`` is in
        ``sim.keras_model.trainable_weights``).

    Attributes
    ----------
    shape : tuple of int
        Shape of the weight, as Nengo reports it in ``sim.data``.

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

    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     entry = sim.weights[conn]
    ...     entry.assign(np.ones(entry.shape))
    ...     print(entry.name, entry.shape, np.all(sim.data[conn].weights == 1))
    rec.weights (2, 10) True
    """

    def __init__(self, obj, attr, name, path, signal, variable, rows, trainable):
        self.obj = obj
        self.attr = attr
        self.name = name
        self.path = path
        self.signal = signal
        self.variable = variable
        self.rows = np.asarray(rows, dtype=np.int64)
        self.trainable = bool(trainable)
        self.shape = tuple(signal.shape)

    @property
    def key(self) -> tuple:
        """``(obj, attr)``, the canonical look-up key."""
        return (self.obj, self.attr)

    @property
    def size(self) -> int:
        """Number of scalar weights."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def row_slice(self) -> slice | None:
        """``rows`` as a slice when they are contiguous, else None."""
        if len(self.rows) and np.all(np.diff(self.rows) == 1):
            return slice(int(self.rows[0]), int(self.rows[-1]) + 1)
        return None

    def read(self) -> np.ndarray:
        """Return the current value as a new numpy array of shape ``self.shape``."""
        return self.read_tensor().numpy().reshape(self.shape)

    def read_tensor(self) -> tf.Tensor:
        """Return the current value as a tensor (differentiable w.r.t. the variable)."""
        value = tf.gather(self.variable, self.rows, axis=0)
        return tf.reshape(value, self.shape)

    def assign(self, value) -> None:
        """Write ``value`` (shape ``self.shape``) into the simulator's variable.

        Parameters
        ----------
        value : array_like
            The new weight; it must have exactly ``self.shape``.
        """
        value = np.asarray(value, dtype=self.variable.dtype.as_numpy_dtype)
        if value.shape != self.shape:
            raise WeightFileError(
                f"{self.name}: expected a value of shape {self.shape}, got "
                f"{value.shape}"
            )
        rows = value.reshape((len(self.rows),) + tuple(self.variable.shape[1:]))
        self.variable.scatter_nd_update(self.rows[:, None], rows)

    def take(self, variable_gradient) -> np.ndarray:
        """Cut this weight's part out of a gradient w.r.t. the whole variable.

        Parameters
        ----------
        variable_gradient : array_like
            Shape ``(*leading, *variable.shape)``.

        Returns
        -------
        numpy.ndarray
            Shape ``(*leading, *self.shape)``.
        """
        g = np.asarray(variable_gradient)
        lead = g.shape[: g.ndim - len(self.variable.shape)]
        part = np.take(g, self.rows, axis=len(lead))
        return part.reshape(lead + self.shape)

    def __repr__(self) -> str:
        where = self.row_slice or f"rows {self.rows.tolist()}"
        return (
            f"<WeightEntry {self.name!r} shape={self.shape} "
            f"in {self.variable.name}[{where}]"
            f"{'' if self.trainable else ' (not trainable)'}>"
        )


class WeightTable:
    """All labelled weights of a simulator, looked up by Nengo object or name.

    Access it as ``sim.weights``. Look-ups accept:

    - a Connection (its ``"weights"``), an Ensemble (its ``"scaled_encoders"``) or
      ``ens.neurons`` (its ``"bias"``);
    - an ``(obj, attr)`` tuple, e.g. ``(ens, "scaled_encoders")``; ``"encoders"`` is
      accepted as an alias of ``"scaled_encoders"``;
    - a readable name (``"a->b.weights"``) or a stable path
      (``"connections[0]:weights"``).

    Iterating yields `WeightEntry` objects in network order.

    Parameters
    ----------
    sim : nengo_dl.Simulator
        A built simulator.

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

    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     print(sim.weights.names)
    ...     same = sim.weights[ens] is sim.weights[ens, "encoders"]
    ...     stored = sim.data[ens].scaled_encoders
    ...     live = np.array_equal(sim.weights[ens].read(), stored)
    ['ens.scaled_encoders', 'ens.neurons.bias', 'rec.weights']
    >>> same, live
    (True, True)
    """

    def __init__(self, sim):
        self._sim = sim
        network = sim.model.toplevel
        self.paths = object_paths(network) if network is not None else {}
        self._entries: dict = {}
        self._excluded: dict = {}
        if network is None:
            return
        candidates = []
        for ens in network.all_ensembles:
            candidates.append((ens, "scaled_encoders"))
            if not isinstance(ens.neuron_type, nengo.Direct):
                candidates.append((ens.neurons, "bias"))
        for conn in network.all_connections:
            candidates.append((conn, "weights"))
        names_seen: dict = {}
        for obj, attr in candidates:
            entry = self._make_entry(obj, attr)
            if isinstance(entry, str):
                self._excluded[(obj, attr)] = entry
                continue
            n = names_seen.get(entry.name, 0)
            names_seen[entry.name] = n + 1
            if n:
                entry.name = f"{entry.name}#{n + 1}"
            self._entries[(obj, attr)] = entry

    def _make_entry(self, obj, attr):
        """A `WeightEntry`, or a string saying why ``obj`` has no such weight."""
        tg = self._sim.tensor_graph
        sig_dict = self._sim.model.sig.get(obj, {})
        signal = sig_dict.get(SIGNAL_KEYS[attr])
        if signal is None:
            if isinstance(obj, nengo.Connection):
                return (
                    "a connection from a Node or Neurons with the default "
                    "transform=None passes values through unweighted. Give it an "
                    f"explicit transform (e.g. transform=np.eye({obj.size_out}) or "
                    "nengo.Dense(...)) to create trainable weights, or take the "
                    "Jacobian w.r.t. the signal it carries"
                )
            return "it has no weight signal in the built model"
        if isinstance(obj, nengo.Ensemble) and isinstance(
            obj.neuron_type, nengo.Direct
        ):
            return (
                "it is a Direct-mode ensemble, which NengoDL runs as a Python function"
            )
        if getattr(signal, "minibatched", False):
            return (
                "it is modified online by a learning rule, so NengoDL keeps it as "
                "per-minibatch simulator state rather than a trainable weight"
            )
        if signal not in tg.signals:
            return "NengoDL removed it from the graph"
        tsig = tg.signals[signal]
        variable = tg.base_params.get(tsig.key)
        if variable is None:
            return "NengoDL keeps it as simulator state, not as a parameter"
        rows = np.concatenate([np.arange(a, b) for a, b in tsig.slices])
        trainable = tsig.key in tg.base_arrays_init["trainable"]
        name = f"{object_name(obj, self.paths)}.{attr}"
        return WeightEntry(
            obj, attr, name, self.paths.get(obj), signal, variable, rows, trainable
        )

    # ---- look-up ------------------------------------------------------------------
    def resolve(self, key) -> WeightEntry:
        """Return the `WeightEntry` for ``key`` (see the class docstring)."""
        if isinstance(key, WeightEntry):
            key = key.key
        if isinstance(key, str):
            return self._by_name(key)
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], str):
            obj, attr = key
            attr = ATTRIBUTE_ALIASES.get(attr, attr)
        else:
            obj, attr = key, _default_attr(key)
        if isinstance(obj, nengo.base.ObjView):
            raise NoWeightsError(
                f"{object_name(obj, self.paths)}: weights belong to the whole object, "
                f"not to a slice; ask for {object_name(obj.obj, self.paths)!r}"
            )
        if (obj, attr) in self._entries:
            return self._entries[(obj, attr)]
        if (obj, attr) in self._excluded:
            kind = type(obj).__name__
            raise NoWeightsError(
                f"{kind} {object_name(obj, self.paths)} has no {attr}: "
                f"{self._excluded[(obj, attr)]}."
            )
        self._raise_missing(obj, attr)

    def _raise_missing(self, obj, attr):
        name = object_name(obj, self.paths)
        if obj not in self.paths:
            raise UnknownObjectError(
                f"{name} is not part of this simulator's network; weights exist "
                f"for: {self._listing()}"
            )
        valid = {
            nengo.Ensemble: "'scaled_encoders'",
            Neurons: "'bias'",
            nengo.Connection: "'weights'",
        }.get(type(obj))
        if valid is None:
            raise NoWeightsError(
                f"{name} is a {type(obj).__name__}, which has no weights; weights "
                f"belong to Ensembles (scaled_encoders), ens.neurons (bias) and "
                f"Connections (weights)."
            )
        raise NoWeightsError(
            f"{name} has no weight {attr!r}; a {type(obj).__name__} has {valid}."
        )

    def _by_name(self, name: str) -> WeightEntry:
        for entry in self._entries.values():
            if name in (entry.name, f"{entry.path}:{entry.attr}"):
                return entry
        raise UnknownObjectError(
            f"No weight is named {name!r}; valid names: {self._listing()}"
        )

    def _listing(self, limit: int = 20) -> str:
        names = [e.name for e in self._entries.values()]
        if not names:
            return "(none)"
        more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
        return ", ".join(repr(n) for n in names[:limit]) + more

    def __getitem__(self, key) -> WeightEntry:
        return self.resolve(key)

    def __contains__(self, key) -> bool:
        try:
            self.resolve(key)
        except (UnknownObjectError, NoWeightsError):
            return False
        return True

    def __iter__(self) -> Iterator[WeightEntry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> list[str]:
        """Readable names of all entries, in network order."""
        return [e.name for e in self._entries.values()]

    def values(self) -> dict:
        """Return ``{entry name: current value}`` for every entry."""
        return {e.name: e.read() for e in self}

    def __repr__(self) -> str:
        lines = [f"WeightTable with {len(self)} weights:"]
        lines += [
            f"  {e.name:<40} {str(e.shape):<12} {e.variable.name}"
            f"[{e.row_slice or e.rows.tolist()}]"
            for e in self
        ]
        return "\n".join(lines)

    # ---- save / load by object --------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Save every weight to an ``.npz`` file, keyed by object path.

        Parameters
        ----------
        path : str or os.PathLike
            Target file (``.npz`` is appended by numpy if missing).
        """
        arrays = {}
        meta = {}
        for e in self:
            key = f"{e.path}:{e.attr}"
            arrays[key] = e.read()
            meta[key] = {
                "type": type(e.obj).__name__,
                "label": getattr(e.obj, "label", None),
                "name": e.name,
                "shape": list(e.shape),
            }
        np.savez(path, __meta__=np.array(json.dumps(meta)), **arrays)

    def load(self, path: str | os.PathLike, strict: bool = True) -> None:
        """Load weights saved by `save`, matching them to objects by path.

        Each saved weight is checked against the object now at the same place in the
        network (type, label and shape) before anything is written, so a file from a
        different network is rejected instead of silently swapping weights.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by `save`.
        strict : bool
            If True (default), the file must hold exactly this network's weights.
        """
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            arrays = {k: data[k] for k in meta}
        by_key = {f"{e.path}:{e.attr}": e for e in self}
        problems = []
        for key, info in meta.items():
            entry = by_key.get(key)
            if entry is None:
                problems.append(f"{info['name']} ({key}) is not in this network")
                continue
            if type(entry.obj).__name__ != info["type"] or (
                getattr(entry.obj, "label", None) != info["label"]
            ):
                problems.append(
                    f"{key} holds {info['type']} {info['label']!r} in the file but "
                    f"{type(entry.obj).__name__} {entry.obj.label!r} here"
                )
            elif tuple(info["shape"]) != entry.shape:
                problems.append(
                    f"{entry.name}: shape {tuple(info['shape'])} in the file, "
                    f"{entry.shape} here"
                )
        if strict:
            problems += [
                f"{e.name} ({k}) is missing from the file"
                for k, e in by_key.items()
                if k not in meta
            ]
        if problems:
            raise WeightFileError(
                f"{os.fspath(path)} does not match this network; nothing was "
                f"loaded: " + "; ".join(problems)
            )
        for key in meta:
            by_key[key].assign(arrays[key])


def _default_attr(obj) -> str:
    if isinstance(obj, nengo.Ensemble):
        return "scaled_encoders"
    if isinstance(obj, Neurons):
        return "bias"
    return "weights"
