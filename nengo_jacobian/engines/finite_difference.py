"""Batched central finite differences: each perturbation is a lane of one pass."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nengo_jacobian.engines.base import Engine
from nengo_jacobian.pullback import lane_graph
from nengo_jacobian.request import Request


class FiniteDifference(Engine):
    """Central differences ``(f(x + h e) − f(x − h e)) / 2h``, vectorized over lanes.

    Each column of the Jacobian (one input step and dimension of an input Node or a
    `~nengo_jacobian.Hidden` signal) needs two simulations; all of them run as lanes
    of one forward pass (no backward pass, no tape memory). It is an independent check
    of the autodiff engines and is cheap when the input side is small. Weights are
    shared by all lanes, so they cannot be perturbed per lane: use ``"reverse"`` or
    ``"loop"`` for them.

    Parameters
    ----------
    step : float, optional
        The step ``h``. Default: ``ε^(1/3) · max(1, |x|)`` for the simulator's dtype
        (≈ 4.9e-3 in float32, 6e-6 in float64), which balances truncation (∝ h²)
        against rounding (∝ ε/h).
    chunk_size : int
        Maximum number of lanes (two per column and item) per pass.

    Notes
    -----
    Differences are taken of the rate-mode network, as for every engine. Near
    non-smooth points (a LIF neuron at its threshold) they are not derivatives.

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

    >>> from nengo_jacobian.engines import FiniteDifference
    >>> x = np.full((1, 3, 2), 0.5)
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     jac = sim.jacobian(out, stim, x, method=FiniteDifference())
    ...     reference = sim.jacobian(out, stim, x, method="reverse")
    >>> jac.shape, bool(np.allclose(jac, reference, rtol=1e-3, atol=1e-5))
    ((1, 3, 2, 3, 2), True)
    """

    name = "finite_difference"

    def __init__(self, step: float | None = None, chunk_size: int = 256):
        self.step = step
        self.chunk_size = max(2, int(chunk_size))

    def __repr__(self) -> str:
        return f"FiniteDifference(step={self.step}, chunk_size={self.chunk_size})"

    def supports(self, request: Request) -> bool:
        """Whether every target can be perturbed per lane (inputs, hidden signals)."""
        return all(t.entry is None for t in request.targets)

    def compute(self, request: Request) -> dict:
        """Compute ``request`` column by column; see `Engine.compute`."""
        if not self.supports(request):
            raise NotImplementedError(
                "FiniteDifference perturbs inputs and hidden signals per lane; weights "
                "are shared by all lanes. Use method='reverse' or method='loop'."
            )
        sim = request.sim
        dtype = np.dtype(sim.tensor_graph.dtype)
        eps = np.finfo(dtype).eps
        hidden = [t.signal for t in request.targets if t.signal is not None]
        columns_per_item = max(
            int(np.prod(request.target_shape(t))) for t in request.targets
        )
        n_lanes = min(self.chunk_size // 2, columns_per_item * request.n_items) * 2
        program = _program(sim, request, n_lanes, hidden)
        inputs = [np.asarray(x, dtype) for x in request.inputs]
        input_index = {n: i for i, n in enumerate(sim.tensor_graph.invariant_inputs)}
        results = {}
        for t in request.targets:
            n_steps, dims = request.target_shape(t)
            columns = [
                (i, s, j)
                for i in range(request.n_items)
                for s in range(n_steps)
                for j in range(dims)
            ]
            out = np.zeros((request.n_items, request.n_rows, n_steps, dims), dtype)
            per_pass = n_lanes // 2
            for start in request.track(range(0, len(columns), per_pass)):
                chunk = columns[start : start + per_pass]
                items = np.zeros(n_lanes, np.int32)
                x_lanes = [np.zeros((n_lanes,) + x.shape[1:], dtype) for x in inputs]
                # time-major, as the lane graph reads perturbations
                pert = [
                    np.zeros((request.n_steps, n_lanes, s.size), dtype) for s in hidden
                ]
                steps = np.zeros(len(chunk))
                for c, (i, s, j) in enumerate(chunk):
                    for lane, sign in ((2 * c, 1.0), (2 * c + 1, -1.0)):
                        items[lane] = i
                        for k, x in enumerate(inputs):
                            x_lanes[k][lane] = x[i]
                        if t.node is not None:
                            k = input_index[t.node]
                            base = abs(inputs[k][i, s, j])
                        else:
                            k, base = None, 0.0
                        h = self.step or eps ** (1 / 3) * max(1.0, base)
                        steps[c] = h
                        if k is not None:
                            x_lanes[k][lane, s, j] += sign * h
                        else:
                            index = [id(x) for x in hidden].index(id(t.signal))
                            pert[index][s, lane, j] += sign * h
                flat = program(x_lanes, pert, items % sim.minibatch_size).numpy()
                flat = flat[:, request.rows]
                for c, (i, s, j) in enumerate(chunk):
                    out[i, :, s, j] = (flat[2 * c] - flat[2 * c + 1]) / (2 * steps[c])
            results[t] = out
        sim.jacobian_info.update(lanes=n_lanes)
        return results


def _program(sim, request: Request, n_lanes: int, hidden: list):
    key = (
        "finite_difference",
        n_lanes,
        tuple(sim.model.probes.index(p) for p in request.probes),
        tuple(map(id, hidden)),
        request.n_steps,
    )
    cache = sim._jacobian_cache
    if key not in cache:
        lanes = lane_graph(sim, n_lanes, hidden)
        probe_index = [sim.model.probes.index(p) for p in request.probes]
        n_steps = request.n_steps

        @tf.function(autograph=False)
        def program(x_lanes, perturbations, state_rows):
            probes, _ = lanes.run(x_lanes, perturbations, n_steps, state_rows)
            return tf.concat(
                [tf.reshape(probes[i], (n_lanes, -1)) for i in probe_index], axis=1
            )

        cache[key] = program
    return cache[key]
