"""``nengo-jacobian run MODEL.py --points FILE``: a sweep of a model file's Jacobian."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from nengo_jacobian.exceptions import DataError
from nengo_jacobian.model_file import (
    ModelFileError,
    input_nodes,
    load_model_file,
    named_probes,
)


@dataclass(frozen=True)
class ModelFileNetwork:
    """A picklable network factory: runs a model file's source on the worker.

    The source travels with the task, so workers on other machines need not see the
    file (only files that it reads itself).
    """

    path: str
    source: str

    def __call__(self):
        import tempfile

        if os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as f:
                if f.read() == self.source:
                    return load_model_file(self.path).network
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, os.path.basename(self.path))
            with open(copy, "w", encoding="utf-8") as f:
                f.write(self.source)
            return load_model_file(copy).network


def load_points(path: str) -> np.ndarray:
    """Points from ``.npy``, ``.npz`` (one array, or the one named ``points``) or text.

    Text files (``.csv``, ``.txt``) hold one point per line, values separated by
    commas or white space.
    """
    if not os.path.isfile(path):
        raise DataError(f"No such points file: {path}")
    try:
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as arrays:
                if "points" in arrays.files:
                    return arrays["points"]
                if len(arrays.files) == 1:
                    return arrays[arrays.files[0]]
                raise DataError(
                    f"{path} holds several arrays ({', '.join(arrays.files)}); name "
                    f"the points array 'points'."
                )
        delimiter = "," if path.endswith(".csv") else None
        return np.loadtxt(path, delimiter=delimiter, ndmin=2)
    except (OSError, ValueError) as error:
        raise DataError(f"Cannot read points file {path}: {error}") from None


def run_sweep(args) -> int:
    """The ``run --points`` command; return the exit code."""
    from nengo_jacobian.sweeps import sweep

    model = load_model_file(args.model)
    probes = list(named_probes(model.network))
    nodes = list(input_nodes(model.network))
    of = _one(args.probe, probes, "--probe", "probes")
    wrt = _one(args.wrt, nodes, "--wrt", "input Nodes")
    points = load_points(args.points)
    n_steps = args.steps or (model.n_steps if np.ndim(points) == 2 else None)
    threads = 1
    if args.scheduler:
        client, workers = args.scheduler, None
    elif args.workers == 0:  # in this process, with TensorFlow's own threads
        client, workers, threads = "serial", None, None
    else:
        client, workers = None, args.workers
    show = not args.quiet
    with open(args.model, encoding="utf-8") as f:
        factory = ModelFileNetwork(os.path.abspath(args.model), f.read())
    start = time.perf_counter()
    result = sweep(
        factory,
        points,
        of=of,
        wrt=wrt,
        input=args.input,
        n_steps=n_steps,
        chunk=args.chunk,
        client=client,
        workers=workers,
        threads=threads,
        out=os.path.join(args.out, "sweep"),
        method=args.method,
        progress_bar=show and sys.stdout.isatty(),
    )
    seconds = time.perf_counter() - start
    # the chunks were written here: read them here, not on a Client's workers
    # (remote ones may not see the files)
    result = result.load(scheduler="threads")
    os.makedirs(args.out, exist_ok=True)
    paths = [os.path.join(args.out, "sweep.nc"), os.path.join(args.out, "sweep.txt")]
    result.to_netcdf(paths[0])
    summary = sweep_summary(result)
    with open(paths[1], "w", encoding="utf-8") as f:
        f.write(f"{args.model}\n{summary}\n")
    if result.sizes.get("point_dim") == 2:
        paths.append(_map(result, os.path.join(args.out, "sweep_manipulability.png")))
    if show:
        print(
            f"{args.model}: {result.sizes['point']} points, "
            f"{result.attrs['chunks_computed']} chunks computed "
            f"({result.attrs['chunks_reused']} reused), {result.attrs['where']}, "
            f"{seconds:.1f} s\n\n{summary}\n"
        )
    print("\n".join(f"wrote {p}" for p in paths))
    return 0


def _one(names, valid, flag, what) -> str:
    if names and len(names) > 1:
        raise ModelFileError(
            f"A sweep (--points) is of one probe w.r.t. one input Node: give one "
            f"{flag}, not {len(names)}."
        )
    if names:
        return names[0]  # checked by sweep, with the valid names
    if len(valid) != 1:
        raise ModelFileError(
            f"The model has {len(valid)} {what} ({', '.join(map(repr, valid))}); "
            f"say which with {flag} NAME."
        )
    return valid[0]


def sweep_summary(result) -> str:
    """A table: each summary's min, median and max over the points, and where."""
    lines = [
        f"d {result.attrs['probe']} / d {result.attrs['wrt']} at "
        f"{result.sizes['point']} points ({result.attrs['point']}, "
        f"{result.attrs['n_steps']} step(s)); matrix {result.attrs['matrix']}",
        f"  {'':<16}{'min':>11}{'median':>11}{'max':>11}  point of min / max",
    ]
    for name in ("norm", "condition", "manipulability"):
        v = np.asarray(result[name].values)
        finite = np.where(np.isfinite(v), v, np.nan)
        lo, hi = int(np.nanargmin(finite)), int(np.nanargmax(finite))
        lines.append(
            f"  {name:<16}{np.nanmin(finite):>11.4g}{np.nanmedian(finite):>11.4g}"
            f"{np.nanmax(finite):>11.4g}  {lo} / {hi}"
        )
    return "\n".join(lines)


def _map(result, path: str) -> str:
    from nengo_jacobian.plots import _pyplot

    plt = _pyplot()
    xy = result["points"].values
    fig, ax = plt.subplots(figsize=(5.5, 4.5), constrained_layout=True)
    dots = ax.scatter(xy[:, 0], xy[:, 1], c=result["manipulability"].values, s=12)
    fig.colorbar(dots, ax=ax, label="√det(J Jᵀ)")
    ax.set(
        title=f"manipulability of d {result.attrs['probe']} / d {result.attrs['wrt']}",
        xlabel=f"{result.attrs['input']}[0]",
        ylabel=f"{result.attrs['input']}[1]",
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
