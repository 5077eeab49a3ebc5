"""Jacobian sweeps over many operating points, on Dask workers or in this process.

`sweep` computes one probe's Jacobian at every point of an array of inputs (a robot's
workspace, a data set, a grid of operating points). The points are cut into chunks of
a fixed size; each chunk is one task, computed as one minibatch by a
`~nengo_jacobian.Simulator` that each worker process builds once from a picklable
network factory and keeps for all its chunks. By default the tasks run on an embedded
Dask ``LocalCluster`` of worker processes (TensorFlow holds one simulator per
process); the same call runs on a multi-machine Dask cluster given its scheduler
address, or in this process with ``client="serial"``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time

import numpy as np

from nengo_jacobian._sweep_store import ChunkStore, points_digest
from nengo_jacobian._sweep_worker import (
    ChunkRunner,
    SweepSpec,
    close_runners,
    compute_chunk,
)
from nengo_jacobian.exceptions import DataError, JacobianError, UnknownObjectError
from nengo_jacobian.progress import Progress
from nengo_jacobian.results import DERIVATIVE_NOTE
from nengo_jacobian.version import __version__

__all__ = ["SweepError", "sweep"]

#: Variables of a sweep's dataset besides ``jacobian`` and ``points``.
REDUCTIONS = ("norm", "singular_values", "condition", "manipulability")


class SweepError(JacobianError):
    """A sweep cannot start or cannot finish: its factory, points or settings.

    Catch it, or any error of this package, as `~nengo_jacobian.JacobianError`.

    Examples
    --------
    >>> import threading, nengo_jacobian
    >>> lock = threading.Lock()
    >>> try:
    ...     nengo_jacobian.sweep(lambda: lock, [[0.0]], of="out", wrt="stim")
    ... except nengo_jacobian.SweepError as error:
    ...     print(str(error).split(":")[0])
    build_network cannot be pickled
    """


def sweep(
    build_network,
    points,
    of: str,
    wrt: str,
    *,
    input: str | None = None,
    n_steps: int | None = None,
    output_steps="auto",
    tied="auto",
    chunk: int = 64,
    client=None,
    workers: int | None = None,
    threads: int | None = 1,
    out: str | os.PathLike | None = None,
    keep_jacobian: bool = True,
    method: str = "auto",
    simulator_kwargs: dict | None = None,
    progress_bar: bool | None = None,
    on_chunk=None,
):
    """Jacobians of one probe at many operating points, chunked over Dask workers.

    **A point** is one row of ``points``: the value of the input Node ``input``.

    - ``points`` of shape ``(n_points, input.size_out)``: each point is a constant
      input held for ``n_steps`` steps (default 1). By default the Jacobian is that
      of the last output step w.r.t. the held value (``output_steps=-1``,
      ``tied=True``), e.g. ``∂hand/∂q`` of a kinematics network at joint angles
      ``q``: shape ``(probe_dims, input_dims)`` per point.
    - ``points`` of shape ``(n_points, n_steps, input.size_out)``: each point is a
      whole input sequence, and the Jacobian is the full one, ``(n_steps,
      probe_dims, n_steps, input_dims)`` per point (``output_steps=None``,
      ``tied=False``).

    ``wrt`` may also name a weight (``"a->b.weights"``, as in ``sim.weights``); the
    points still drive ``input``. Each point starts from the simulator's initial
    state, as a `~nengo_jacobian.Simulator.jacobian` item does.

    **Chunks.** Points are cut into chunks of ``chunk`` consecutive points, the same
    for any number of workers. A chunk is one task: one
    `~nengo_jacobian.Simulator.labelled_jacobian` call with ``minibatch_size =
    chunk`` (the last chunk is padded by repeating its last point). Each worker
    process builds the network and the simulator once per sweep and keeps them for
    all its chunks, so the build and the traced graph are paid once per worker.

    **Bit for bit.** Every point is computed at the same place of the same chunk in a
    graph of the same shape, by the same code, whether the chunk runs in this
    process (``client="serial"``), on one worker or on many, and again after a
    worker dies. So for a given ``chunk``, network, settings, TensorFlow thread
    count (``threads``) and software versions, the results are identical bits
    whatever the number of workers, and equal to the serial loop run with the same
    thread count (tested with 1, 2 and 4 workers against a serial loop, and after
    killing a worker). A different ``chunk`` or thread count may change the last
    bits (another minibatch shape; TensorFlow splits some operations by thread).

    **Worker loss.** A task whose worker dies is run again on another worker by Dask
    (the embedded cluster's nanny also restarts the worker); results are collected
    by chunk index, so every point is present exactly once.

    Parameters
    ----------
    build_network : callable
        ``build_network() -> nengo.Network``, sent to every worker (so it must be
        picklable by ``cloudpickle``: a module-level function, a
        ``functools.partial`` of one, or a closure over picklable values). Give the
        network a seed so that every worker builds the same weights. It is also
        called once in this process, to check the labels and the points' shape.
    points : array_like
        ``(n_points, dims)`` or ``(n_points, n_steps, dims)``; anything with
        ``shape`` and slicing (a numpy memmap, a Dask, Zarr or HDF5 array) is read one
        chunk at a time.
    of : str
        The probe's label.
    wrt : str
        An input Node's label, or a weight name (e.g. ``"a->b.weights"``).
    input : str, optional
        Label of the input Node that receives the points; default: ``wrt`` if it is
        an input Node, else the network's only input Node.
    n_steps : int, optional
        Steps per point (constant points only; default 1).
    output_steps : int, slice, list or None
        As for `~nengo_jacobian.Simulator.jacobian`; default ``-1`` for constant
        points, ``None`` (all steps) for sequences.
    tied : bool
        As for `~nengo_jacobian.Simulator.jacobian`; default: True for constant
        points and an input ``wrt``, else False.
    chunk : int
        Points per task (and the simulator's minibatch size). Larger chunks amortize
        more per-task overhead and need more memory per worker.
    client : None, "serial", str or distributed.Client
        Where to compute. None: an embedded ``distributed.LocalCluster`` of
        ``workers`` processes with one thread each, closed afterwards. ``"serial"``:
        in this process, no Dask. A scheduler address (``"tcp://host:8786"``) or a
        ``distributed.Client`` (or cluster): that cluster, whose workers need
        nengo_jacobian installed.
    workers : int, optional
        Worker processes of the embedded cluster (default: the CPU count).
    threads : int or None
        TensorFlow intra- and inter-op threads per process (default 1, so that
        ``workers`` processes use ``workers`` cores); None leaves TensorFlow's
        default. Applied where TensorFlow has not started yet (always on the embedded
        cluster's workers; in this process, for ``client="serial"``, only if it has
        not run TensorFlow yet). ``attrs["tensorflow_threads"]`` records what the
        chunks ran with.
    out : str or path, optional
        A directory: each chunk is written to ``out/chunks/`` as soon as it arrives
        (NetCDF), and the result is opened from there, backed by Dask, so it need not
        fit in memory. Running the same sweep again with the same ``out`` computes
        only the chunks that are missing (e.g. after an interruption).
    keep_jacobian : bool
        False: keep only the summaries (``norm``, ``singular_values``,
        ``condition``, ``manipulability``), not the Jacobians themselves.
    method : str
        The engine, as for `~nengo_jacobian.Simulator.jacobian`.
    simulator_kwargs : dict, optional
        More `~nengo_jacobian.Simulator` arguments (``dt``, ``seed`` ...); not
        ``minibatch_size`` (that is ``chunk``).
    progress_bar : bool or None
        Show a progress bar (on a terminal, after a couple of seconds); False: never.
    on_chunk : callable, optional
        ``on_chunk(index, dataset)``, called in this process as each chunk is stored,
        with that chunk's dataset (``point`` coordinates are global indices).
        An exception raised by it stops the sweep (chunks already written to ``out``
        stay there).

    Returns
    -------
    xarray.Dataset
        Along the dimension ``point`` (coordinate: the point's index):

        - ``jacobian``: ``(point, *probe axes, *wrt axes)`` with the axis names of
          `~nengo_jacobian.JacobianResult.to_dataarray` (``time``, ``probe_dim``,
          ``input_time``, ``input_dim`` or the weight's ``post``, ``pre`` ...);
        - ``points``: the point values, ``(point, point_dim)`` or ``(point,
          point_step, point_dim)``;
        - ``norm``, ``condition``, ``manipulability``: ``(point,)``;
          ``singular_values``: ``(point, singular_value)``. Each point's Jacobian is
          read as a matrix (rows: the probe's axes; columns: the wrt axes);
          manipulability is √det(J Jᵀ) (0 when there are more rows than columns),
          condition the largest over the smallest singular value; float64.

        Attributes name the probe, wrt, engine, ``dt``, ``chunk``, how many chunks
        were computed (``chunks_computed``) and reused from ``out``
        (``chunks_reused``), the wall time (``seconds``) and the time spent in
        chunk computations (``compute_seconds``, summed over workers).

    Raises
    ------
    SweepError
        A factory that cannot be pickled or does not return a network, a bad
        ``chunk``, an ``out`` directory of another sweep, a worker that keeps dying.
    DataError
        Points of the wrong shape.
    UnknownObjectError
        ``of``, ``wrt`` or ``input`` not found (the message lists the valid names).

    Examples
    --------
    >>> import nengo, numpy as np, nengo_jacobian
    >>> def build():
    ...     with nengo.Network(seed=0) as net:
    ...         stim = nengo.Node(np.zeros(2), label="stim")
    ...         ens = nengo.Ensemble(40, 2, neuron_type=nengo.LIF())
    ...         nengo.Connection(stim, ens, synapse=None)
    ...         nengo.Probe(ens, synapse=None, label="out")
    ...     return net
    >>> q = np.random.default_rng(0).uniform(-0.5, 0.5, size=(10, 2))
    >>> result = nengo_jacobian.sweep(
    ...     build, q, of="out", wrt="stim", chunk=4, client="serial"
    ... )
    >>> result["jacobian"].dims, result["jacobian"].shape
    (('point', 'probe_dim', 'input_dim'), (10, 2, 2))
    >>> result["manipulability"].shape, int(result.attrs["chunks_computed"])
    ((10,), 3)
    """
    started = time.perf_counter()
    _check_factory(build_network)
    network = build_network()
    import nengo

    if not isinstance(network, nengo.Network):
        raise SweepError(
            f"build_network() must return a nengo.Network, got "
            f"{type(network).__name__}."
        )
    from nengo_jacobian.model_file import input_nodes, named_probes

    probes, nodes = named_probes(network), input_nodes(network)
    if of not in probes:
        raise UnknownObjectError(
            f"sweep: unknown probe {of!r}; the network's probes are: "
            f"{', '.join(map(repr, probes)) or 'none'} (give probes a label)."
        )
    input = _input_name(input, wrt, nodes)
    points, constant, n_steps = _check_points(points, nodes[input], input, n_steps)
    if not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise SweepError(f"chunk must be a positive int, got {chunk!r}.")
    simulator_kwargs = dict(simulator_kwargs or {})
    for reserved in ("minibatch_size", "progress_bar"):
        if reserved in simulator_kwargs:
            raise SweepError(
                f"simulator_kwargs may not set {reserved!r}: the sweep sets it "
                f"(minibatch_size is `chunk`)."
            )
    if output_steps == "auto":
        output_steps = -1 if constant else None
    if tied == "auto":
        tied = constant and wrt in nodes
    n_points, chunk = len(points), int(chunk)
    n_chunks = math.ceil(n_points / chunk)
    settings = {
        "of": of,
        "wrt": wrt,
        "input": input,
        "chunk": chunk,
        "n_steps": int(n_steps),
        "constant": bool(constant),
        "output_steps": repr(output_steps),
        "tied": bool(tied),
        "method": str(method),
        "simulator_kwargs": repr(sorted(simulator_kwargs.items())),
        "keep_jacobian": bool(keep_jacobian),
        "build_network": _qualname(build_network),
    }
    token = hashlib.sha256(
        repr(sorted(settings.items())).encode() + _pickled(build_network)
    ).hexdigest()
    spec = SweepSpec(
        token=token,
        build_network=build_network,
        of=of,
        wrt=wrt,
        input=input,
        chunk=chunk,
        n_steps=int(n_steps),
        constant=bool(constant),
        output_steps=output_steps,
        tied=bool(tied),
        method=method,
        threads=threads,
        simulator_kwargs=simulator_kwargs,
        keep_jacobian=bool(keep_jacobian),
    )

    def chunk_values(i: int) -> np.ndarray:
        return np.asarray(points[i * chunk : (i + 1) * chunk], dtype=np.float64)

    store = None
    todo = list(range(n_chunks))
    if out is not None:
        manifest = {**settings, "n_points": n_points, "version": __version__}
        store = ChunkStore(out, manifest, error=SweepError)
        todo = [i for i in todo if not store.done(i, points_digest(chunk_values(i)))]
    collected: dict = {}
    meta: dict = {}
    bar = Progress(
        "Sweeping Jacobians",
        "Swept Jacobians over",
        max_value=n_points,
        enabled=progress_bar,
    )
    reused = set(range(n_chunks)) - set(todo)
    bar.step(sum(min(chunk, n_points - i * chunk) for i in reused))
    seen: set = set()
    compute_seconds: list = []

    def handle(result: dict) -> None:
        i = result["index"]
        if i in seen:
            return  # a task that ran twice (e.g. around a worker's death)
        seen.add(i)
        compute_seconds.append(result["seconds"])
        values = chunk_values(i)
        if not meta:
            meta.update(_meta(result))
        if store is not None or on_chunk is not None:
            ds = _dataset(
                [result], [values], i * chunk, constant, _attrs(meta, settings)
            )
            ds.attrs["points_sha256"] = points_digest(values)
            ds.attrs["computed_by"] = result["computed_by"]
            ds.attrs["compute_seconds"] = round(result["seconds"], 6)
        if store is not None:
            store.write(i, ds)
        else:
            collected[i] = (result, values)
        bar.step(len(values))
        if on_chunk is not None:
            on_chunk(i, ds)

    try:
        with bar:
            where = _compute(spec, todo, chunk_values, handle, client, workers)
    finally:
        bar.close()
    attrs = {
        "chunks_computed": len(todo),
        "chunks_reused": n_chunks - len(todo),
        "where": where,
        "seconds": round(time.perf_counter() - started, 3),
        "compute_seconds": round(float(sum(compute_seconds)), 3),
    }
    if store is not None:
        dataset = store.open(n_chunks)
        dataset.attrs.pop("points_sha256", None)
        dataset.attrs.pop("computed_by", None)
        dataset.attrs.pop("compute_seconds", None)
        dataset.attrs.update(attrs)
        return dataset
    missing = [i for i in range(n_chunks) if i not in collected]
    if missing:  # cannot happen unless a scheduler lost track of a task
        raise SweepError(f"chunks {missing} were never computed; run the sweep again.")
    ordered = [collected[i] for i in range(n_chunks)]
    dataset = _dataset(
        [r for r, _ in ordered],
        [v for _, v in ordered],
        0,
        constant,
        _attrs(meta, settings),
    )
    dataset.attrs.update(attrs)
    return dataset


# --- running the chunks ---------------------------------------------------------


def _compute(spec, todo, chunk_values, handle, client, workers) -> str:
    """Run the chunks ``todo``; return a description of where."""
    if isinstance(client, str) and client == "serial":
        if workers is not None:
            raise SweepError(
                'workers= is for the embedded cluster, not client="serial".'
            )
        if todo:
            runner = ChunkRunner(spec)
            try:
                for i in todo:
                    handle(runner.run(i, chunk_values(i)))
            finally:
                runner.close()
        return "serial"
    owned = []
    try:
        if client is None:
            client = _local_client(workers, owned)
        elif workers is not None:
            raise SweepError(
                "workers= sizes the embedded cluster; with client= the cluster's own "
                "workers are used."
            )
        else:
            client = _connect(client, owned)
        n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
        if todo:
            _run_futures(client, spec, todo, chunk_values, handle, max(n_workers, 1))
        if owned:  # our cluster: close the simulators before the processes go
            client.run(close_runners)
        return f"dask ({n_workers} worker{'s' * (n_workers != 1)})"
    finally:
        for thing in reversed(owned):
            thing.close()


def _local_client(workers, owned):
    from distributed import Client, LocalCluster

    n = workers if workers is not None else (os.cpu_count() or 1)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise SweepError(f"workers must be a positive int, got {workers!r}.")
    import dask

    # Send queued chunks to workers ahead of time (Dask holds back independent
    # tasks by default), so that a worker never waits a round trip for its next one.
    with dask.config.set({"distributed.scheduler.worker-saturation": float("inf")}):
        cluster = LocalCluster(
            n_workers=int(n),
            threads_per_worker=1,  # one simulator per process; tasks one at a time
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env={"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")},
        )
    owned.append(cluster)
    client = Client(cluster)
    owned.append(client)
    client.wait_for_workers(int(n))
    return client


def _connect(client, owned):
    from distributed import Client

    if isinstance(client, Client):
        return client
    if isinstance(client, str) or hasattr(client, "scheduler_address"):
        connected = Client(client)
        owned.append(connected)
        return connected
    raise SweepError(
        f"client must be None (an embedded LocalCluster), 'serial', a scheduler "
        f"address or a distributed.Client, got {type(client).__name__}."
    )


def _run_futures(client, spec, todo, chunk_values, handle, n_workers) -> None:
    """Keep a few tasks per worker in flight; hand each result over as it arrives."""
    from distributed import as_completed

    window = 2 * n_workers + 2  # bounds the memory of points and results in flight
    pending = iter(todo)
    live = []

    def submit(i):
        future = client.submit(
            compute_chunk,
            spec,
            i,
            chunk_values(i),
            key=f"nengo-jacobian-sweep-{spec.token[:16]}-{i}",
            pure=False,
        )
        live.append(future)
        return future

    queue = as_completed([submit(i) for _, i in zip(range(window), pending)])
    try:
        for future in queue:
            try:
                result = future.result()
            except Exception as error:
                if type(error).__name__ == "KilledWorker":
                    raise SweepError(
                        f"a chunk's worker died repeatedly ({error}); the chunk may "
                        f"need more memory than a worker has: try a smaller chunk."
                    ) from error
                raise
            live.remove(future)
            future.release()
            for i in pending:  # keep the workers fed while this result is stored
                queue.add(submit(i))
                break
            handle(result)
    finally:
        if live:
            client.cancel(live)


# --- checks -----------------------------------------------------------------------


def _pickled(build_network) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(build_network)


def _check_factory(build_network) -> None:
    if not callable(build_network):
        raise SweepError(
            f"build_network must be a function that returns a nengo.Network (each "
            f"worker calls it to build its own copy), got "
            f"{type(build_network).__name__}."
        )
    try:
        _pickled(build_network)
    except Exception as error:
        raise SweepError(
            f"build_network cannot be pickled: {type(error).__name__}: {error}. "
            f"It is sent to every Dask worker: use a module-level function or a "
            f"functools.partial of one, build the network inside it, and do not "
            f"capture simulators, TensorFlow objects, locks or open files."
        ) from None


def _input_name(input, wrt, nodes) -> str:
    names = ", ".join(map(repr, nodes)) or "none"
    if input is None:
        if wrt in nodes:
            return wrt
        if len(nodes) == 1:
            return next(iter(nodes))
        raise UnknownObjectError(
            f"sweep: say which input Node receives the points (input=...); the input "
            f"Nodes are: {names}."
        )
    if input not in nodes:
        raise UnknownObjectError(
            f"sweep: unknown input Node {input!r}; the input Nodes are: {names}."
        )
    return input


def _check_points(points, node, name, n_steps):
    if not hasattr(points, "shape") or not hasattr(points, "__getitem__"):
        points = np.asarray(points, dtype=np.float64)
    shape = tuple(points.shape)
    size = node.size_out
    if len(shape) not in (2, 3) or shape[-1] != size or shape[0] < 1:
        raise DataError(
            f"points must be (n_points, {size}) (a constant value of Node {name!r} "
            f"per point) or (n_points, n_steps, {size}) (an input sequence per "
            f"point), got shape {shape}."
        )
    if len(shape) == 2:
        n_steps = 1 if n_steps is None else n_steps
        if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise DataError(f"n_steps must be a positive int, got {n_steps!r}.")
        return points, True, int(n_steps)
    if n_steps is not None and n_steps != shape[1]:
        raise DataError(
            f"n_steps={n_steps} but the point sequences have {shape[1]} steps; leave "
            f"n_steps out for sequences."
        )
    return points, False, shape[1]


def _qualname(obj) -> str:
    target = getattr(obj, "func", obj)  # functools.partial
    return (
        f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
    )


# --- the result ---------------------------------------------------------------------


def _meta(result: dict) -> dict:
    keys = ("dims", "coords", "n_out_axes", "probe", "wrt", "kind", "engine", "dt")
    keys += ("tensorflow_threads",)
    return {k: result[k] for k in keys}


def _attrs(meta: dict, settings: dict) -> dict:
    return {
        "probe": meta["probe"],
        "wrt": meta["wrt"],
        "kind": meta["kind"],
        "input": settings["input"],
        "engine": meta["engine"],
        "dt": meta["dt"],
        "chunk": settings["chunk"],
        "tensorflow_threads": meta["tensorflow_threads"],
        "n_steps": settings["n_steps"],
        "point": "constant input held for n_steps"
        if settings["constant"]
        else "input sequence",
        "output_steps": settings["output_steps"],
        "tied": int(settings["tied"]),
        "matrix": "rows: "
        + ", ".join(meta["dims"][: meta["n_out_axes"]])
        + "; columns: "
        + ", ".join(meta["dims"][meta["n_out_axes"] :]),
        "derivatives": DERIVATIVE_NOTE,
        "nengo_jacobian_version": __version__,
    }


def _dataset(results: list, values: list, start: int, constant: bool, attrs: dict):
    """One `xarray.Dataset` of consecutive chunks starting at point ``start``."""
    import xarray as xr

    first = results[0]
    dims = first["dims"]
    n = sum(r["n"] for r in results)
    point = np.arange(start, start + n)
    variables = {
        "points": (
            ("point", "point_dim")
            if constant
            else ("point", "point_step", "point_dim"),
            np.concatenate(values),
        ),
        "norm": (("point",), np.concatenate([r["norm"] for r in results])),
        "singular_values": (
            ("point", "singular_value"),
            np.concatenate([r["singular_values"] for r in results]),
        ),
        "condition": (("point",), np.concatenate([r["condition"] for r in results])),
        "manipulability": (
            ("point",),
            np.concatenate([r["manipulability"] for r in results]),
        ),
    }
    coords = {"point": point}
    if "jacobian" in first:
        variables["jacobian"] = (
            ("point", *dims),
            np.concatenate([r["jacobian"] for r in results]),
        )
        coords.update(first["coords"])
    dataset = xr.Dataset(variables, coords=coords, attrs=attrs)
    dataset["jacobian" if "jacobian" in first else "norm"].attrs["long_name"] = (
        f"d {attrs['probe']} / d {attrs['wrt']}"
        if "jacobian" in first
        else f"|d {attrs['probe']} / d {attrs['wrt']}|_F"
    )
    return dataset
