"""Labelled Jacobians: named axes, coordinates, files, tables and pictures.

`JacobianResult` holds the blocks of one `~nengo_jacobian.Simulator.labelled_jacobian`
request, each with named axes and coordinates (time in seconds, indices, the Nengo
names of the probe and of what it is differentiated against). It converts to
`xarray.DataArray` / `xarray.Dataset`, saves to NetCDF or ``.npz`` and back without
loss, prints a summary table and draws itself with matplotlib.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from nengo_jacobian.exceptions import JacobianError
from nengo_jacobian.version import __version__

#: Axis names of a weight, by attribute and number of axes.
WEIGHT_AXES = {
    ("weights", 2): ("post", "pre"),
    ("weights", 1): ("post",),
    ("weights", 0): (),
    ("scaled_encoders", 2): ("neuron", "dim"),
    ("encoders", 2): ("neuron", "dim"),
    ("bias", 1): ("neuron",),
    ("gain", 1): ("neuron",),
}

#: Who owns each axis: ``"probe"`` axes belong to the output, ``"wrt"`` axes to what
#: it is differentiated against. Used to qualify axis names in a `xarray.Dataset`
#: where two blocks disagree on an axis.
AXIS_OWNER = {"minibatch": None, "time": "probe", "probe_dim": "probe"}

#: What the derivatives are of, stated in every file.
DERIVATIVE_NOTE = (
    "exact derivatives of the rate-mode network NengoDL trains (training=True): "
    "spiking neurons replaced by their rate model (LIF -> LIFRate or SoftLIFRate)"
)


@dataclass
class JacobianBlock:
    """One Jacobian block: one probe differentiated against one thing.

    Attributes
    ----------
    probe : str
        Name of the probe (its label, or type and path).
    wrt : str
        Name of what it is differentiated against (Node label, weight name such as
        ``"a->b.weights"``, or ``Hidden(...)``).
    kind : {"input", "hidden", "weight"}
        What ``wrt`` is.
    values : numpy.ndarray
        The Jacobian entries.
    dims : tuple of str
        One name per axis of ``values``.
    coords : dict
        ``{axis name: coordinate array}`` for every axis.
    attrs : dict
        More labels (strings and numbers), e.g. the NengoDL variable a weight lives in.
    """

    probe: str
    wrt: str
    kind: str
    values: np.ndarray
    dims: tuple
    coords: dict
    attrs: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Variable name in a `xarray.Dataset` (NetCDF forbids ``/`` in names)."""
        return f"jacobian of {self.probe} wrt {self.wrt}".replace("/", "_")

    def to_dataarray(self):
        """The block as an `xarray.DataArray` with named axes and coordinates."""
        import xarray as xr

        return xr.DataArray(
            self.values,
            dims=self.dims,
            coords={d: self.coords[d] for d in self.dims},
            name=self.name,
            attrs=self._attrs(),
        )

    def _attrs(self) -> dict:
        return {
            "probe": self.probe,
            "wrt": self.wrt,
            "kind": self.kind,
            "long_name": f"d {self.probe} / d {self.wrt}",
            **self.attrs,
        }


class JacobianResult:
    """The labelled blocks of one Jacobian request.

    Index it with ``result[probe, wrt]`` (objects or names) for a numpy array, or
    with ``result[wrt]`` when there is one probe. Iterating gives the
    ``(probe name, wrt name)`` keys.

    Parameters
    ----------
    blocks : list of JacobianBlock
        The blocks, in request order.
    attrs : dict
        Labels of the whole request (``dt``, ``n_steps``, ``engine`` ...).

    Examples
    --------
    >>> import nengo, numpy as np, nengo_jacobian
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node(np.zeros(2), label="stim")
    ...     ens = nengo.Ensemble(10, 2, neuron_type=nengo.RectifiedLinear(), label="a")
    ...     conn = nengo.Connection(
    ...         stim, ens, transform=np.eye(2), synapse=None, label="stim->a"
    ...     )
    ...     out = nengo.Probe(ens, synapse=0.01, label="out")
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     result = sim.labelled_jacobian(out, [stim, conn], n_steps=4)
    >>> list(result)
    [('out', 'stim'), ('out', 'stim->a.weights')]
    >>> result["out", "stim"].shape
    (1, 4, 2, 4, 2)
    >>> result.to_dataarray("out", "stim").dims
    ('minibatch', 'time', 'probe_dim', 'input_time', 'input_dim')
    >>> result.to_dataarray("out", "stim->a.weights").dims
    ('minibatch', 'time', 'probe_dim', 'post', 'pre')
    """

    def __init__(self, blocks: list[JacobianBlock], attrs: dict | None = None):
        self.blocks = list(blocks)
        self.attrs = dict(attrs or {})
        self._by_name = {(b.probe, b.wrt): b for b in self.blocks}
        self._aliases: dict = {}

    # --- access ------------------------------------------------------------------

    def __iter__(self):
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self.blocks)

    def __contains__(self, key) -> bool:
        try:
            self.block(*self._split(key))
        except KeyError:
            return False
        return True

    def __getitem__(self, key) -> np.ndarray:
        return self.block(*self._split(key)).values

    def __repr__(self) -> str:
        lines = [f"<JacobianResult with {len(self)} block(s)"]
        for b in self.blocks:
            shape = ", ".join(f"{d}: {n}" for d, n in zip(b.dims, b.values.shape))
            lines.append(f"  d {b.probe} / d {b.wrt}  ({shape})")
        return "\n".join(lines) + ">"

    @property
    def probes(self) -> list[str]:
        """Probe names, in request order."""
        return list(dict.fromkeys(b.probe for b in self.blocks))

    @property
    def wrts(self) -> list[str]:
        """Names of what the probes are differentiated against, in request order."""
        return list(dict.fromkeys(b.wrt for b in self.blocks))

    def block(self, probe=None, wrt=None) -> JacobianBlock:
        """The block of ``probe`` w.r.t. ``wrt`` (names or the objects asked for).

        Either may be omitted when the result has only one of it.
        """
        probe = self._name(probe, self.probes, "probe")
        wrt = self._name(wrt, self.wrts, "wrt")
        try:
            return self._by_name[probe, wrt]
        except KeyError:
            raise KeyError(f"No block d {probe} / d {wrt} in this result.") from None

    def _split(self, key) -> tuple:
        if isinstance(key, tuple) and len(key) == 2 and not _is_weight_key(key):
            return key
        return (None, key) if len(self.probes) == 1 else (key, None)

    def _name(self, key, names: list[str], what: str) -> str:
        if key is None:
            if len(names) != 1:
                raise KeyError(
                    f"This result has several {what}s ({', '.join(names)}); say which."
                )
            return names[0]
        if isinstance(key, str) and key in names:
            return key
        alias = self._aliases.get(_identity(key))
        if alias is not None:
            return alias
        raise KeyError(
            f"Unknown {what} {key!r}; this result has: {', '.join(map(repr, names))}."
        )

    # --- xarray ------------------------------------------------------------------

    def to_dataarray(self, probe=None, wrt=None):
        """One block as an `xarray.DataArray`.

        Axes are named ``minibatch``, ``time`` (output time in seconds),
        ``probe_dim``, then for an input Node or hidden signal ``input_time`` (seconds)
        and ``input_dim``, and for a weight its own axes: ``post, pre`` (connection
        weights), ``neuron, dim`` (encoders) or ``neuron`` (biases).
        """
        return self.block(probe, wrt).to_dataarray()

    def to_dataset(self):
        """All blocks as one `xarray.Dataset`.

        Variables are named ``"jacobian of {probe} wrt {wrt}"``. Axes keep the names of
        `to_dataarray` where all blocks agree on them; an axis on which blocks differ
        (e.g. ``input_dim`` of two Nodes of different sizes) is qualified by its owner,
        e.g. ``stim:input_dim``. Each variable's ``axes`` attribute keeps the plain
        names.
        """
        import xarray as xr

        names = self._dataset_dims()
        variables, coords = {}, {}
        for b in self.blocks:
            dims = tuple(names[id(b), d] for d in b.dims)
            for d, qualified in zip(b.dims, dims):
                coords[qualified] = (qualified, b.coords[d])
            attrs = b._attrs()
            attrs["axes"] = ",".join(b.dims)
            variables[b.name] = xr.Variable(dims, b.values, attrs)
        return xr.Dataset(variables, coords=coords, attrs=self._file_attrs())

    def _dataset_dims(self) -> dict:
        """``{(id(block), axis): name in the Dataset}``: qualified where they clash."""
        seen: dict = {}
        for b in self.blocks:
            for d in b.dims:
                seen.setdefault(d, []).append(np.asarray(b.coords[d]))
        clash = {
            d
            for d, values in seen.items()
            if any(
                v.shape != values[0].shape or not np.array_equal(v, values[0])
                for v in values
            )
        }
        names = {}
        for b in self.blocks:
            for d in b.dims:
                if d in clash:
                    owner = b.probe if AXIS_OWNER.get(d, "wrt") == "probe" else b.wrt
                    names[id(b), d] = f"{owner}:{d}".replace("/", "_")
                else:
                    names[id(b), d] = d
        return names

    @classmethod
    def from_dataset(cls, dataset) -> JacobianResult:
        """Rebuild a result from `to_dataset` output (e.g. read from NetCDF)."""
        blocks = []
        for name, var in dataset.data_vars.items():
            attrs = dict(var.attrs)
            try:
                probe, wrt, kind = (
                    attrs.pop("probe"),
                    attrs.pop("wrt"),
                    attrs.pop("kind"),
                )
                dims = tuple(attrs.pop("axes").split(",")) if var.ndim else ()
            except KeyError as missing:
                raise JacobianError(
                    f"Variable {name!r} is not a nengo_jacobian Jacobian (no "
                    f"{missing} attribute)."
                ) from None
            attrs.pop("long_name", None)
            coords = {d: dataset[q].values for d, q in zip(dims, var.dims)}
            blocks.append(
                JacobianBlock(probe, wrt, kind, var.values, dims, coords, attrs)
            )
        attrs = {k: v for k, v in dataset.attrs.items() if k != "derivatives"}
        return cls(blocks, attrs)

    def _file_attrs(self) -> dict:
        return {
            **self.attrs,
            "derivatives": DERIVATIVE_NOTE,
            "nengo_jacobian_version": __version__,
        }

    # --- files -------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Save to NetCDF (``.nc``, via xarray) or numpy (``.npz``) by the extension.

        Both keep values, axis names, coordinates and labels exactly; `load` reads
        either.
        """
        path = os.fspath(path)
        if path.endswith(".nc"):
            self.to_dataset().to_netcdf(path)
        elif path.endswith(".npz"):
            arrays, meta = {}, {"attrs": _plain(self.attrs), "blocks": []}
            for i, b in enumerate(self.blocks):
                arrays[f"values_{i}"] = b.values
                for d in b.dims:
                    arrays[f"coord_{i}_{d}"] = np.asarray(b.coords[d])
                meta["blocks"].append(
                    {
                        "probe": b.probe,
                        "wrt": b.wrt,
                        "kind": b.kind,
                        "dims": list(b.dims),
                        "attrs": _plain(b.attrs),
                    }
                )
            arrays["metadata"] = np.array(json.dumps(meta))
            np.savez(path, **arrays)
        else:
            raise JacobianError(
                f"Cannot save to {path!r}: use a .nc (NetCDF) or .npz file name."
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> JacobianResult:
        """Read a result written by `save`."""
        path = os.fspath(path)
        if path.endswith(".nc"):
            import xarray as xr

            with xr.open_dataset(path) as dataset:
                return cls.from_dataset(dataset.load())
        with np.load(path, allow_pickle=False) as data:
            if "metadata" not in data:
                raise JacobianError(f"{path} was not written by JacobianResult.save.")
            meta = json.loads(str(data["metadata"]))
            blocks = [
                JacobianBlock(
                    m["probe"],
                    m["wrt"],
                    m["kind"],
                    data[f"values_{i}"],
                    tuple(m["dims"]),
                    {d: data[f"coord_{i}_{d}"] for d in m["dims"]},
                    m["attrs"],
                )
                for i, m in enumerate(meta["blocks"])
            ]
        return cls(blocks, meta["attrs"])

    # --- summaries ---------------------------------------------------------------

    def norms(self, probe=None) -> dict[str, float]:
        """``{wrt name: Frobenius norm of d probe / d wrt}`` over items and steps."""
        probe = self._name(probe, self.probes, "probe")
        return {
            b.wrt: float(np.linalg.norm(b.values))
            for b in self.blocks
            if b.probe == probe
        }

    def singular_values(self, probe=None, wrt=None, item: int = 0) -> np.ndarray:
        """Singular values of one item's block as a (probe rows × wrt columns) matrix.

        Rows are the output steps and dims, columns the input steps and dims (or the
        weight's entries).
        """
        b = self.block(probe, wrt)
        n_probe_axes = 1 + sum(d in ("time", "probe_dim") for d in b.dims)
        matrix = np.asarray(b.values[item], dtype=np.float64)
        rows = int(np.prod(matrix.shape[: n_probe_axes - 1]))
        return np.linalg.svd(matrix.reshape(rows, -1), compute_uv=False)

    def summary(self, top: int = 10) -> str:
        """A table per probe: each wrt's norm, largest entry and where it is.

        For inputs and hidden signals it adds the largest singular values and the
        condition number of item 0's matrix; for weights, the ``top`` largest
        sensitivities ‖d probe / d w‖ of single weight entries, by label.
        """
        lines = []
        for probe in self.probes:
            mine = [b for b in self.blocks if b.probe == probe]
            lines.append(f"Probe {probe!r}")
            lines.append(
                f"  {'wrt':<28}{'kind':<8}{'shape':<18}{'|J|_F':>11}{'max |J|':>11}  at"
            )
            for b in sorted(mine, key=lambda b: -np.linalg.norm(b.values)):
                where = np.unravel_index(np.argmax(np.abs(b.values)), b.values.shape)
                at = ", ".join(
                    f"{d}={_coord_text(b.coords[d][i])}" for d, i in zip(b.dims, where)
                )
                shape = "x".join(str(n) for n in b.values.shape[_n_out(b) :]) or "()"
                lines.append(
                    f"  {b.wrt:<28}{b.kind:<8}{shape:<18}"
                    f"{np.linalg.norm(b.values):>11.4g}"
                    f"{np.max(np.abs(b.values)):>11.4g}  {at}"
                )
            for b in mine:
                if b.kind != "weight":
                    s = self.singular_values(b.probe, b.wrt)
                    # causal blocks are singular (outputs before the first input
                    # has an effect); report the rank and the condition of the rest
                    kept = s[s > s[0] * 1e-6] if s[0] > 0 else s[:0]
                    cond = kept[0] / kept[-1] if kept.size else np.nan
                    head = ", ".join(f"{v:.4g}" for v in s[:4])
                    lines.append(
                        f"  singular values of d {probe} / d {b.wrt} (item 0): "
                        f"{head}{' ...' if s.size > 4 else ''}; rank {kept.size} of "
                        f"{s.size}, condition {cond:.3g} on that rank"
                    )
            entries = []
            for b in mine:
                if b.kind == "weight":
                    # sensitivity of one weight entry: norm over items and outputs
                    per_entry = np.sqrt(
                        (b.values**2)
                        .reshape(-1, *b.values.shape[_n_out(b) :])
                        .sum(axis=0)
                    )
                    for index in np.argsort(per_entry, axis=None)[::-1][:top]:
                        idx = np.unravel_index(index, per_entry.shape)
                        label = ", ".join(
                            f"{d}={i}" for d, i in zip(b.dims[_n_out(b) :], idx)
                        )
                        entries.append((float(per_entry[idx]), f"{b.wrt}[{label}]"))
            if entries:
                lines.append(
                    f"  largest sensitivities to single weights "
                    f"(|d {probe} / d w| over items and steps):"
                )
                for value, label in sorted(entries, reverse=True)[:top]:
                    lines.append(f"    {label:<44}{value:>11.4g}")
        return "\n".join(lines)

    # --- pictures ----------------------------------------------------------------

    def plot(self, item: int = 0) -> list:
        """Draw every block as matplotlib figures.

        Inputs and hidden signals get time × time heatmaps (one panel per dim pair);
        each probe gets one bar chart of its sensitivity to each labelled weight.

        Parameters
        ----------
        item : int
            Which minibatch item the heatmaps show.

        Returns
        -------
        list of matplotlib.figure.Figure
        """
        from nengo_jacobian import plots

        figures = []
        dt = float(self.attrs.get("dt", 0.001))
        for b in self.blocks:
            if (
                b.kind != "weight"
                and b.dims[1:2] == ("time",)
                and "input_time" in b.dims
            ):
                figures.append(
                    plots.input_jacobian_figure(
                        b.values, probe_name=b.probe, node_name=b.wrt, dt=dt, item=item
                    )
                )
        for probe in self.probes:
            norms = {
                b.wrt: float(np.linalg.norm(b.values))
                for b in self.blocks
                if b.probe == probe and b.kind == "weight"
            }
            if norms:
                figures.append(plots.weight_sensitivity_figure(norms, probe_name=probe))
        return figures

    def save_plots(self, directory: str | os.PathLike, item: int = 0) -> list[str]:
        """Save `plot`'s figures as PNG files in ``directory``; return their paths."""
        import matplotlib.pyplot as plt

        os.makedirs(directory, exist_ok=True)
        paths = []
        for figure in self.plot(item):
            path = os.path.join(directory, _file_name(figure.get_label()) + ".png")
            figure.savefig(path, dpi=110)
            plt.close(figure)
            paths.append(path)
        return paths


def _n_out(block: JacobianBlock) -> int:
    """Number of leading axes that index items and outputs."""
    return sum(d in ("minibatch", "time", "probe_dim") for d in block.dims)


def _coord_text(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def _file_name(label: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    return keep.strip("_") or "figure"


def _plain(attrs: dict) -> dict:
    """Attributes as JSON-friendly Python values."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in attrs.items()}


def _is_weight_key(key: tuple) -> bool:
    """``(obj, "attr")`` names one weight, not a (probe, wrt) pair."""
    return isinstance(key[1], str) and not isinstance(key[0], str)


def _identity(key):
    try:
        hash(key)
    except TypeError:
        return id(key)
    return key


def build_result(sim, request, blocks: dict, squeeze: bool) -> JacobianResult:
    """Label the blocks computed for ``request`` (see `compute_blocks`).

    Parameters
    ----------
    sim : nengo_jacobian.Simulator
    request : nengo_jacobian.request.Request
    blocks : dict
        ``{(probe, target key): array}``.
    squeeze : bool
        Whether the output-step axis was dropped (``output_steps`` an int).
    """
    from nengo_jacobian.labels import object_name

    dt = float(sim.dt)
    labelled, aliases = [], {}
    for t in request.targets:
        for p, steps in zip(request.probes, request.steps):
            values = blocks[(p, t.key)]
            probe = object_name(p, sim.weights.paths)
            dims = ["minibatch"] + ([] if squeeze else ["time"]) + ["probe_dim"]
            if request.probe_steps[request.probes.index(p)] == 1:
                times = np.array([request.n_steps * dt])  # keep_history=False
            else:
                times = (np.asarray(steps) + 1) * dt  # Nengo's trange starts at dt
            coords = {
                "minibatch": np.arange(values.shape[0]),
                "time": times,
                "probe_dim": np.arange(p.size_in),
            }
            attrs = {}
            if t.entry is not None:
                kind = "weight"
                axes = WEIGHT_AXES.get(
                    (t.entry.attr, len(t.entry.shape)),
                    tuple(f"axis{i}" for i in range(len(t.entry.shape))),
                )
                rows = t.entry.row_slice
                attrs = {
                    "attribute": t.entry.attr,
                    "path": t.entry.path,
                    "variable": t.entry.variable.name,
                    "variable_rows": f"{rows.start}:{rows.stop}"
                    if isinstance(rows, slice)
                    else ",".join(map(str, t.entry.rows)),
                }
            else:
                kind = "input" if t.is_input else "hidden"
                axes = ("input_dim",) if request.tied else ("input_time", "input_dim")
                coords["input_time"] = (np.arange(request.n_steps) + 1) * dt
            for axis, n in zip(axes, values.shape[len(dims) :]):
                coords.setdefault(axis, np.arange(n))
            block_dims = tuple(dims) + tuple(axes)
            coords = {d: coords[d] for d in block_dims}
            labelled.append(
                JacobianBlock(probe, t.name, kind, values, block_dims, coords, attrs)
            )
            aliases[_identity(p)] = probe
            aliases[_identity(t.key)] = t.name
    result = JacobianResult(
        labelled,
        {
            "dt": dt,
            "n_steps": int(request.n_steps),
            "n_items": int(request.n_items),
            "tied": int(bool(request.tied)),
            "engine": str(sim.jacobian_info.get("engine", "")),
        },
    )
    result._aliases = aliases
    return result
