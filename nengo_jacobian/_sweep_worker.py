"""What runs on a sweep's workers: one cached Simulator per process, chunk by chunk.

Each worker process (or the calling process, with ``client="serial"``) keeps one
`ChunkRunner` per sweep signature: the network is built from the factory, the
Simulator (with ``minibatch_size = chunk``) and its Jacobian graph once, and every
chunk after that is one `~nengo_jacobian.Simulator.labelled_jacobian` call. Serial and
distributed sweeps run exactly this code, so their numbers are the same.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SweepSpec:
    """Everything a worker needs to compute chunks (sent with every task).

    ``token`` identifies the sweep's network and settings: workers cache one
    simulator per token.
    """

    token: str
    build_network: object
    of: str
    wrt: str
    input: str
    chunk: int
    n_steps: int
    constant: bool
    output_steps: object
    tied: bool
    method: str
    threads: int | None
    simulator_kwargs: dict = field(default_factory=dict)
    keep_jacobian: bool = True


_RUNNERS: dict = {}
_RUNNERS_LOCK = threading.Lock()


def compute_chunk(spec: SweepSpec, index: int, values: np.ndarray) -> dict:
    """The task: chunk ``index`` (points ``values``) on this process's cached runner.

    A process keeps one runner (TensorFlow holds one simulator per process well);
    a task of another sweep replaces it. A lock serializes tasks of workers that run
    several threads.
    """
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(spec.token)
        if runner is None:
            for old in _RUNNERS.values():
                old.close()
            _RUNNERS.clear()
            runner = _RUNNERS[spec.token] = ChunkRunner(spec)
        return runner.run(index, values)


def close_runners() -> None:
    """Close every cached runner of this process."""
    with _RUNNERS_LOCK:
        for runner in _RUNNERS.values():
            runner.close()
        _RUNNERS.clear()


def _set_threads(threads: int | None) -> bool:
    """Limit TensorFlow's thread pools (possible only before its first operation)."""
    if threads is None:
        return False
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow is already running in this process
        return False
    return True


class ChunkRunner:
    """A built Simulator that computes one sweep's chunks.

    Parameters
    ----------
    spec : SweepSpec
    """

    def __init__(self, spec: SweepSpec):
        import warnings

        from nengo_jacobian.model_file import input_nodes, named_probes
        from nengo_jacobian.simulator import Simulator

        warnings.filterwarnings("ignore", message="No GPU support detected")
        self.spec = spec
        self.threads_set = _set_threads(spec.threads)
        import tensorflow as tf

        # 0 is TensorFlow's default: one thread per core
        self.tensorflow_threads = int(
            tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
        )
        network = spec.build_network()
        self.probe = named_probes(network)[spec.of]
        nodes = input_nodes(network)
        self.input = nodes[spec.input]
        self.sim = Simulator(
            network,
            minibatch_size=spec.chunk,
            progress_bar=False,
            **spec.simulator_kwargs,
        )
        try:
            self.wrt = nodes[spec.wrt] if spec.wrt in nodes else self._weight(spec.wrt)
        except Exception:
            self.sim.close()
            raise

    def _weight(self, name: str):
        from nengo_jacobian.exceptions import UnknownObjectError

        weights = {e.name: e for e in self.sim.weights if e.trainable}
        if name in weights:
            return weights[name]
        nodes = ", ".join(repr(n) for n in _names(self.sim.model.toplevel, "nodes"))
        raise UnknownObjectError(
            f"sweep: unknown wrt {name!r}: it is neither an input Node nor a weight of "
            f"the network. Input Nodes: {nodes or 'none'}; weights: "
            f"{', '.join(map(repr, weights)) or 'none'}."
        )

    def run(self, index: int, values: np.ndarray) -> dict:
        """Jacobians (and their summaries) at ``values``, one chunk's points."""
        spec = self.spec
        start = time.perf_counter()
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        # every chunk fills the whole minibatch (padding repeats the last point), so
        # each point is computed at the same place of the same-shaped graph always
        pad = spec.chunk - n
        if pad:
            values = np.concatenate([values, np.repeat(values[-1:], pad, axis=0)])
        x = (
            np.repeat(values[:, None], spec.n_steps, axis=1)
            if spec.constant
            else values
        )
        result = self.sim.labelled_jacobian(
            self.probe,
            self.wrt,
            {self.input: x},
            spec.n_steps,
            method=spec.method,
            output_steps=spec.output_steps,
            tied=spec.tied,
        )
        block = result.block()
        jacobian = np.asarray(block.values[:n])
        dims = tuple(block.dims[1:])  # without "minibatch"
        n_out = sum(d in ("time", "probe_dim") for d in dims)
        out = {
            "index": index,
            "n": n,
            "dims": dims,
            "coords": {d: np.asarray(block.coords[d]) for d in dims},
            "n_out_axes": n_out,
            "probe": block.probe,
            "wrt": block.wrt,
            "kind": block.kind,
            "engine": str(self.sim.jacobian_info.get("engine", "")),
            "dt": float(self.sim.dt),
            "threads_set": self.threads_set,
            "tensorflow_threads": self.tensorflow_threads,
            "computed_by": f"{socket.gethostname()}:{os.getpid()}",
            **reductions(jacobian, n_out),
        }
        if spec.keep_jacobian:
            out["jacobian"] = jacobian
        out["seconds"] = time.perf_counter() - start
        return out

    def close(self) -> None:
        """Close the simulator."""
        self.sim.close()


def _names(network, what: str) -> list[str]:
    from nengo_jacobian.model_file import input_nodes, named_probes

    return list((input_nodes if what == "nodes" else named_probes)(network))


def reductions(jacobian: np.ndarray, n_out_axes: int) -> dict:
    """Per-point summaries of Jacobians ``(points, *probe_axes, *wrt_axes)``.

    Each point's Jacobian is read as a matrix: rows are the probe's axes (output
    steps and dims), columns what it is differentiated against. In float64:

    - ``norm``: Frobenius norm;
    - ``singular_values``: descending, ``min(rows, cols)`` of them;
    - ``condition``: largest / smallest singular value (``inf`` if it is 0);
    - ``manipulability``: √det(J Jᵀ), the product of the singular values when
      rows ≤ cols (a robot's Yoshikawa manipulability), 0 when rows > cols.
    """
    n = len(jacobian)
    rows = int(np.prod(jacobian.shape[1 : 1 + n_out_axes], dtype=int))
    matrix = np.asarray(jacobian, dtype=np.float64).reshape(n, rows, -1)
    s = np.linalg.svd(matrix, compute_uv=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        condition = np.where(s[:, -1] > 0, s[:, 0] / s[:, -1], np.inf)
    if rows <= matrix.shape[2]:
        manipulability = np.prod(s, axis=1)
    else:
        manipulability = np.zeros(n)
    return {
        "norm": np.sqrt(np.sum(matrix**2, axis=(1, 2))),
        "singular_values": s,
        "condition": condition,
        "manipulability": manipulability,
    }
