"""The interface every engine implements."""

from __future__ import annotations

import abc

import numpy as np

from nengo_jacobian.request import Request


class Engine(abc.ABC):
    """A way of computing the Jacobian of a validated `~nengo_jacobian.request.Request`.

    Subclasses implement `compute`; `nengo_jacobian.Simulator.jacobian` validates the
    request, calls it and shapes the result.

    Examples
    --------
    >>> from nengo_jacobian.engines import Engine, VectorizedReverse
    >>> issubclass(VectorizedReverse, Engine), VectorizedReverse.name
    (True, 'reverse')
    """

    #: Short name shown in `nengo_jacobian.Simulator.jacobian_info`.
    name = "engine"

    #: Whether `compute` returns time-tied results itself when ``request.tied`` (else
    #: the per-step result is summed over input steps afterwards).
    handles_tied = False

    @abc.abstractmethod
    def compute(self, request: Request) -> dict:
        """Return ``{target: array}`` with one array per target.

        Each array has shape ``(n_items, n_rows, *target_shape)`` where the rows run
        over the probes in order and, within a probe, over ``(output step, dim)``.
        """

    def supports(self, request: Request) -> bool:
        """Whether this engine can compute ``request`` (used by ``method="auto"``)."""
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def split_rows(request: Request, array: np.ndarray) -> list[np.ndarray]:
    """Split ``(n_items, n_rows, ...)`` into ``(n_items, steps, dims, ...)`` parts."""
    out, start = [], 0
    for steps, dims in zip(request.steps, request.probe_sizes):
        steps = len(steps)
        stop = start + steps * dims
        part = array[:, start:stop]
        out.append(part.reshape(array.shape[:1] + (steps, dims) + array.shape[2:]))
        start = stop
    return out


def snapshot_state(sim):
    """Save the simulator's saved state and base parameters; return a restorer.

    Engines that run the user's own ``sim.keras_model`` (the reference loop, pfor)
    advance its saved state on every call; calling the returned function puts every
    such variable back, so a Jacobian leaves the simulator as it found it.

    Examples
    --------
    >>> import nengo, numpy as np, nengo_jacobian
    >>> from nengo_jacobian.engines.base import snapshot_state
    >>> with nengo.Network(seed=0) as net:
    ...     ens = nengo.Ensemble(5, 1)
    ...     probe = nengo.Probe(ens, synapse=0.01)
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     restore = snapshot_state(sim)
    ...     before = [v.numpy() for v in sim.tensor_graph.saved_state.values()]
    ...     sim.run_steps(3)  # moves the saved state on
    ...     restore()
    ...     after = [v.numpy() for v in sim.tensor_graph.saved_state.values()]
    >>> all(np.array_equal(a, b) for a, b in zip(before, after))
    True
    """
    variables = list(sim.tensor_graph.saved_state.values()) + list(
        sim.tensor_graph.base_params.values()
    )
    values = [v.numpy() for v in variables]

    def restore() -> None:
        for variable, value in zip(variables, values):
            variable.assign(value)

    return restore
