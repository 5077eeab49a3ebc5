"""Jacobian-vector and vector-Jacobian products without forming the Jacobian."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nengo_jacobian.exceptions import DataError, JacobianError
from nengo_jacobian.pullback import compiled, lane_plan
from nengo_jacobian.request import Request, build_request


def _request(sim, of, wrt, data, n_steps) -> Request:
    request, single_probe, single_target = build_request(sim, of, wrt, data, n_steps)
    if not (single_probe and single_target):
        raise JacobianError(
            "vjp and jvp take one probe (`of`) and one `wrt`; call them once per pair."
        )
    return request


def _vectors(request, values, row_shape, what):
    """``(n_items, K, *row_shape)`` from ``(n_items, [K,] *row_shape)``, and K given."""
    values = np.asarray(values, dtype=np.dtype(request.sim.tensor_graph.dtype))
    row_shape = tuple(row_shape)
    if values.shape[:1] != (request.n_items,) or values.shape[-len(row_shape) :] != (
        row_shape
    ):
        raise DataError(
            f"{what} must have shape (n_items, [K,] {', '.join(map(str, row_shape))}) "
            f"with n_items={request.n_items}; got {values.shape}."
        )
    if values.ndim == 1 + len(row_shape):
        return values[:, None], False
    if values.ndim == 2 + len(row_shape):
        return values, True
    raise DataError(f"{what} has shape {values.shape}; too many axes.")


def _program(sim, request, n_lanes, method):
    plan = lane_plan(sim, request.probes, request.targets, request.n_steps, n_lanes)
    return compiled(sim, plan, method)


def _lanes(request, n_vectors):
    items = np.repeat(np.arange(request.n_items, dtype=np.int32), n_vectors)
    return items, (items % request.sim.minibatch_size).astype(np.int32)


def vjp(sim, of, wrt, cotangents, data=None, n_steps=None) -> np.ndarray:
    """``vᵀ · ∂of/∂wrt``; see `nengo_jacobian.Simulator.vjp`."""
    request = _request(sim, of, wrt, data, n_steps)
    (target,) = request.targets
    probe_shape = (request.probe_steps[0], request.probe_sizes[0])
    v, batched = _vectors(request, cotangents, probe_shape, "cotangents")
    n_vectors = v.shape[1]
    program = _program(sim, request, request.n_items * n_vectors, "pullback")
    items, rows = _lanes(request, n_vectors)
    (result,) = program(
        [tf.constant(x) for x in request.inputs],
        items,
        rows,
        tf.constant(v.reshape(request.n_items * n_vectors, -1)),
    )
    result = result.numpy().reshape(
        (request.n_items, n_vectors) + request.target_shape(target)
    )
    return result if batched else result[:, 0]


def jvp(sim, of, wrt, tangents, data=None, n_steps=None) -> np.ndarray:
    """``∂of/∂wrt · z``; see `nengo_jacobian.Simulator.jvp`."""
    request = _request(sim, of, wrt, data, n_steps)
    (target,) = request.targets
    z, batched = _vectors(request, tangents, request.target_shape(target), "tangents")
    n_vectors = z.shape[1]
    program = _program(sim, request, request.n_items * n_vectors, "pushforward")
    items, rows = _lanes(request, n_vectors)
    result = program(
        [tf.constant(x) for x in request.inputs],
        items,
        rows,
        tf.constant(z.reshape((request.n_items * n_vectors,) + z.shape[2:])),
    )
    result = result.numpy().reshape(
        (request.n_items, n_vectors, request.probe_steps[0], request.probe_sizes[0])
    )
    return result if batched else result[:, 0]
