"""Probe outputs of the rate-mode network: the function whose Jacobian is computed."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from nengo_jacobian.pullback import lane_plan
from nengo_jacobian.request import (
    Request,
    check_rate_mode,
    prepare_inputs,
    resolve_probes,
)

#: Items per forward pass (lanes of one lane graph).
MAX_LANES = 256


def rate_outputs(sim, of, data=None, n_steps=None):
    """Probe outputs of the rate-mode network; see `Simulator.rate_outputs`."""
    probes, single = resolve_probes(sim, of)
    check_rate_mode(sim)
    inputs, n_items, n_steps = prepare_inputs(sim, data, n_steps)
    request = Request(sim, probes, [], inputs, n_items, n_steps)
    n_chunks = math.ceil(n_items / MAX_LANES)
    n_lanes = math.ceil(n_items / n_chunks)
    plan = lane_plan(sim, probes, [], n_steps, n_lanes)
    key = ("outputs", id(plan))
    if key not in sim._jacobian_cache:
        sim._jacobian_cache[key] = tf.function(plan.outputs, autograph=False)
    program = sim._jacobian_cache[key]
    tensors = [tf.constant(x) for x in request.inputs]
    results = [[] for _ in probes]
    for chunk in range(n_chunks):
        items = np.arange(chunk * n_lanes, (chunk + 1) * n_lanes)
        n_valid = int(np.sum(items < n_items))
        items = np.minimum(items, n_items - 1).astype(np.int32)
        state_rows = (items % sim.minibatch_size).astype(np.int32)
        for i, value in enumerate(program(tensors, items, state_rows)):
            results[i].append(value.numpy()[:n_valid])
    arrays = [np.concatenate(r) for r in results]
    return arrays[0] if single else dict(zip(probes, arrays))
