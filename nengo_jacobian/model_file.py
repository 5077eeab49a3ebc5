"""Load a user's model file and find its objects by name (for ``nengo-jacobian run``).

A model file is a Python file that builds a `nengo.Network` at module level. It may
also define ``n_steps`` (int) and ``data`` (``{Node or Node label: array of shape
(n_items, n_steps, size)}``). Objects are addressed by label.
"""

from __future__ import annotations

import os
import runpy
from dataclasses import dataclass, field

import nengo
import numpy as np

from nengo_jacobian.exceptions import DataError, JacobianError, UnknownObjectError
from nengo_jacobian.labels import object_name, object_paths


class ModelFileError(JacobianError):
    """A model file cannot be loaded or does not define what is needed."""


@dataclass
class ModelFile:
    """What a model file defines.

    Attributes
    ----------
    path : str
    network : nengo.Network
    n_steps : int or None
    data : dict
        ``{label or Node: array}`` as the file defined it (may be empty).
    """

    path: str
    network: nengo.Network
    n_steps: int | None = None
    data: dict = field(default_factory=dict)


def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Run a model file and return the network it defines.

    The network is the module-level variable ``model``, ``net`` or ``network`` if
    there is one, else the only `nengo.Network` at module level.

    Raises
    ------
    ModelFileError
        If the file is missing, does not run, or defines no (or several) networks.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"No such model file: {path}")
    try:
        namespace = runpy.run_path(path, run_name="__nengo_jacobian_model__")
    except SyntaxError as error:
        raise ModelFileError(
            f"{path}, line {error.lineno}: syntax error: {error.msg}"
        ) from None
    except Exception as error:  # the user's code failed; say where, briefly
        raise ModelFileError(
            f"{path} failed while running: {type(error).__name__}: {error}"
        ) from None
    networks = {
        name: value
        for name, value in namespace.items()
        if isinstance(value, nengo.Network) and not name.startswith("_")
    }
    for preferred in ("model", "net", "network"):
        if preferred in networks:
            network = networks[preferred]
            break
    else:
        if len(networks) != 1:
            found = ", ".join(sorted(networks)) or "none"
            raise ModelFileError(
                f"{path} must define one nengo.Network at module level (found: "
                f"{found}); name it `model` to choose."
            )
        network = next(iter(networks.values()))
    n_steps = namespace.get("n_steps")
    if n_steps is not None and (not isinstance(n_steps, int) or n_steps < 1):
        raise ModelFileError(f"{path}: n_steps must be a positive int, got {n_steps!r}")
    data = namespace.get("data") or {}
    if not isinstance(data, dict):
        raise ModelFileError(
            f"{path}: data must be a dict {{Node label: array}}, got "
            f"{type(data).__name__}"
        )
    return ModelFile(path, network, n_steps, data)


def named_probes(network: nengo.Network) -> dict[str, nengo.Probe]:
    """``{name: probe}`` for every probe (its label, or type and path)."""
    paths = object_paths(network)
    return {object_name(p, paths): p for p in network.all_probes}


def input_nodes(network: nengo.Network) -> dict[str, nengo.Node]:
    """``{name: node}`` for every input Node (``size_in == 0``, not a Process)."""
    paths = object_paths(network)
    return {
        object_name(n, paths): n
        for n in network.all_nodes
        if n.size_in == 0 and n.output is not None
    }


def find_probes(network: nengo.Network, names: list[str] | None) -> list[nengo.Probe]:
    """The probes with these names (all probes if ``names`` is empty)."""
    probes = named_probes(network)
    if not probes:
        raise ModelFileError(
            "The network has no Probe; add nengo.Probe(obj, label=...) for the outputs "
            "to differentiate."
        )
    if not names:
        return list(probes.values())
    missing = [n for n in names if n not in probes]
    if missing:
        raise UnknownObjectError(
            f"Unknown probe {', '.join(map(repr, missing))}; the probes are: "
            f"{', '.join(map(repr, probes))}."
        )
    return [probes[n] for n in names]


def find_wrt(sim, names: list[str] | None) -> list:
    """What to differentiate against, by name.

    A name is an input Node's label, a weight name from ``sim.weights`` (e.g.
    ``"a->b.weights"``, ``"a.scaled_encoders"``, ``"a.neurons.bias"``), ``inputs``
    (every input Node) or ``weights`` (every trainable weight). No names: every
    input Node, or every weight if there is no input Node.
    """
    nodes = input_nodes(sim.model.toplevel)
    weights = {e.name: e for e in sim.weights if e.trainable}
    if not names:
        names = ["inputs"] if nodes else ["weights"]
    chosen = []
    for name in names:
        if name == "inputs":
            chosen.extend(nodes.values())
        elif name == "weights":
            chosen.extend(weights.values())
        elif name in nodes:
            chosen.append(nodes[name])
        elif name in weights:
            chosen.append(weights[name])
        else:
            raise UnknownObjectError(
                f"Unknown --wrt {name!r}. Input Nodes: "
                f"{', '.join(map(repr, nodes)) or 'none'}; weights: "
                f"{', '.join(map(repr, weights)) or 'none'}; or 'inputs' / 'weights' "
                f"for all of them."
            )
    if not chosen:
        raise ModelFileError(
            "Nothing to differentiate against (no inputs, no weights)."
        )
    return list({id(c): c for c in chosen}.values())


def load_data(path: str | None, model: ModelFile) -> dict:
    """Input data ``{Node: array}``: from ``path`` or the model file's ``data``.

    An ``.npz`` file holds one array per input Node label.
    """
    nodes = input_nodes(model.network)
    given = dict(model.data)
    if path is not None:
        try:
            with np.load(path) as arrays:
                given = {k: arrays[k] for k in arrays.files}
        except (OSError, ValueError) as error:
            raise DataError(f"Cannot read data file {path}: {error}") from None
    data = {}
    for key, value in given.items():
        node = key if isinstance(key, nengo.Node) else nodes.get(key)
        if node is None:
            raise DataError(
                f"Data for {key!r}, which is not an input Node; the input Nodes are: "
                f"{', '.join(map(repr, nodes)) or 'none'}."
            )
        data[node] = np.asarray(value)
    return data
