"""Validate a request, pick an engine, shape and label the result."""

from __future__ import annotations

import time

import numpy as np

from nengo_jacobian.engines import (
    Engine,
    FiniteDifference,
    ForwardMode,
    ReferenceLoop,
    TapeJacobian,
    VectorizedReverse,
)
from nengo_jacobian.engines.base import split_rows
from nengo_jacobian.exceptions import JacobianError, NonFiniteJacobianError
from nengo_jacobian.labels import object_name
from nengo_jacobian.request import Request, build_request, lane_blockers

#: Names accepted by ``method=``.
METHODS = {
    "reverse": VectorizedReverse,
    "reverse_xla": VectorizedReverse,
    "loop": ReferenceLoop,
    "finite_difference": FiniteDifference,
    "forward": ForwardMode,
    "pfor": TapeJacobian,
}


#: A forward lane (a JVP by double backward) costs about this many reverse lanes.
FORWARD_LANE_COST = 2.0


def _auto(request: Request, chunk_size=None) -> Engine:
    """Pick an engine by the request's shape.

    Reverse mode needs one lane per output row (all targets at once); forward mode one
    lane per input column and target, each about `FORWARD_LANE_COST` times dearer.
    Weights always go backwards (one column per weight element), and to the reference
    loop only when the vectorized engine has no rule for them, or when lanes cannot
    replay the network (`~nengo_jacobian.request.lane_blockers`). Reverse mode is
    compiled by XLA where `~nengo_jacobian.engines.reverse.xla_pays`.
    """
    reverse = VectorizedReverse(chunk_size=chunk_size, jit_compile="auto")
    if not reverse.supports(request) or lane_blockers(request.sim):
        return ReferenceLoop()
    forward = ForwardMode(chunk_size=chunk_size or 256)
    if forward.supports(request):
        columns = sum(
            int(
                np.prod(
                    request.target_shape(t)[1:]
                    if request.tied
                    else request.target_shape(t)
                )
            )
            for t in request.targets
        )
        if FORWARD_LANE_COST * columns < request.n_rows:
            return forward
    return reverse


def choose_engine(method, request: Request, chunk_size=None) -> Engine:
    """Turn ``method`` (a name or an `Engine`) into an engine for ``request``."""
    if isinstance(method, Engine):
        if chunk_size is not None:
            raise JacobianError(
                "chunk_size is given both as an argument and inside the engine object; "
                "set it on the engine only."
            )
        return method
    if method == "auto":
        return _auto(request, chunk_size)
    if method not in METHODS:
        raise JacobianError(
            f"Unknown method {method!r}; use 'auto', "
            + ", ".join(repr(m) for m in METHODS)
            + ", or an engine object from nengo_jacobian.engines."
        )
    if method == "reverse":
        return VectorizedReverse(chunk_size=chunk_size)
    if method == "reverse_xla":
        return VectorizedReverse(chunk_size=chunk_size, jit_compile=True)
    if method == "finite_difference":
        return FiniteDifference(chunk_size=chunk_size or 256)
    if method == "forward":
        return ForwardMode(chunk_size=chunk_size or 256)
    if method == "pfor":
        return TapeJacobian()
    return ReferenceLoop()


def _select_steps(output_steps, probes, probe_steps):
    """Per-probe arrays of selected output steps, and whether to drop the axis."""
    if output_steps is None:
        return None, False
    squeeze = isinstance(output_steps, (int, np.integer))
    selected = []
    for p, length in zip(probes, probe_steps):
        steps = np.arange(length)
        try:
            chosen = np.atleast_1d(steps[output_steps])
        except IndexError:
            raise JacobianError(
                f"output_steps={output_steps!r} is out of range for Probe "
                f"{object_name(p)}, which has {length} output step(s)."
            ) from None
        if chosen.size == 0:
            raise JacobianError(f"output_steps={output_steps!r} selects no step.")
        selected.append(chosen)
    return selected, squeeze


def compute_blocks(
    sim,
    of,
    wrt,
    data=None,
    n_steps=None,
    method="auto",
    chunk_size=None,
    output_steps=None,
    tied=False,
):
    """Compute every (probe, target) block of a Jacobian request.

    Returns
    -------
    request : Request
    blocks : dict
        ``{(probe, target.key): array}`` in request order.
    single : tuple of bool
        Whether one probe and one target were asked for (not in lists).
    squeeze : bool
        Whether ``output_steps`` was an int (the output-step axis is dropped).
    """
    request, single_probe, single_target = build_request(sim, of, wrt, data, n_steps)
    probes, targets = request.probes, request.targets
    selected, squeeze = _select_steps(output_steps, probes, request.probe_steps)
    if tied:
        weights = [t.name for t in targets if t.entry is not None]
        if weights:
            raise JacobianError(
                f"tied=True holds an input or hidden signal's change constant over "
                f"time; weights are constant already ({', '.join(weights)})."
            )
    request.selected_steps = selected
    request.tied = tied
    request.progress = False if not getattr(sim, "progress_bar", True) else None
    engine = choose_engine(method, request, chunk_size)

    sim.jacobian_info = {"engine": engine.name, "method": method}
    start = time.perf_counter()
    by_target = engine.compute(request)
    sim.jacobian_info["seconds"] = time.perf_counter() - start

    blocks = {}
    for t in targets:
        for p, block in zip(probes, split_rows(request, by_target[t])):
            if not np.all(np.isfinite(block)):
                raise NonFiniteJacobianError(
                    f"The Jacobian of Probe {object_name(p)} w.r.t. {t.name} has "
                    f"{np.size(block) - np.isfinite(block).sum()} NaN or infinite "
                    f"entries. Check the input data and weights for extreme values "
                    f"(rates overflow), or use dtype='float64'."
                )
            if tied and not engine.handles_tied:
                block = block.sum(axis=3)  # the same change at every input step
            if squeeze:
                block = block[:, 0]
            blocks[(p, t.key)] = block
    return request, blocks, (single_probe, single_target), squeeze


def compute_jacobian(sim, of, wrt, data=None, n_steps=None, **options):
    """Jacobian of probe outputs w.r.t. input Nodes and weights.

    See `nengo_jacobian.Simulator.jacobian`, which is the public entry point;
    ``options`` are its keyword arguments.
    """
    request, result, (single_probe, single_target), _ = compute_blocks(
        sim, of, wrt, data, n_steps, **options
    )
    probes, targets = request.probes, request.targets
    if single_probe and single_target:
        return result[(probes[0], targets[0].key)]
    if single_target:
        return {p: result[(p, targets[0].key)] for p in probes}
    if single_probe:
        return {t.key: result[(probes[0], t.key)] for t in targets}
    return {p: {t.key: result[(p, t.key)] for t in targets} for p in probes}
