"""Reaching and Jacobian-accuracy metrics.

With the hand position measured, operational space control converges even with a poor
Jacobian, so final error hardly tells Jacobians apart; the maximum deviation from the
straight start–target line does (robot_force_control notes, §4.3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from nengo_jacobian.arms._linalg import FloatArray


class ReachMetrics(NamedTuple):
    """How well one reach went.

    Attributes
    ----------
    final_error : float
        Distance from the hand to the target at the end of the reach, in metres.
    time_to_reach : float
        First time (seconds from the reach's start) after which the hand stays within
        the ``reached`` radius until the end; ``inf`` if it ends outside.
    max_deviation : float
        Largest perpendicular distance of the hand from the straight line through the
        start and the target, in metres.
    """

    final_error: float
    time_to_reach: float
    max_deviation: float


def reaching_metrics(
    path: ArrayLike,
    start: ArrayLike,
    target: ArrayLike,
    dt: float,
    reached: float = 0.02,
) -> ReachMetrics:
    """Final error, time to within ``reached`` of the target, and path deviation.

    Parameters
    ----------
    path : array_like, shape (n_samples, task_dims)
        Hand positions; sample ``k`` is at time ``k·dt`` after the reach starts.
    start : array_like, shape (task_dims,)
        Where the reach started (the straight-line reference runs through it).
    target : array_like, shape (task_dims,)
        Where the reach should end.
    dt : float
        Time between samples in seconds.
    reached : float
        Radius in metres that counts as "at the target" (2 cm is abr_control's).

    Returns
    -------
    ReachMetrics
        Non-finite samples count as outside the radius, so a diverged reach is a miss.

    Examples
    --------
    A straight reach that closes 10 cm at 1 m/s and then holds still:

    >>> import numpy as np
    >>> from nengo_jacobian.arms import reaching_metrics
    >>> t = np.arange(201) * 1e-3
    >>> path = np.stack([np.minimum(t, 0.1), np.zeros_like(t)], axis=-1)
    >>> m = reaching_metrics(path, [0, 0], [0.1, 0], dt=1e-3)
    >>> round(m.final_error, 9), round(m.time_to_reach, 3), m.max_deviation
    (0.0, 0.081, 0.0)
    """
    path = np.asarray(path, dtype=np.float64)
    start = np.asarray(start, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    error = np.linalg.norm(path - target, axis=-1)
    final_error = float(error[-1])
    outside = np.flatnonzero(~(error < reached))  # NaN compares False: a miss
    if outside.size and outside[-1] == error.shape[0] - 1:
        time_to_reach = math.inf
    else:
        time_to_reach = float((outside[-1] + 1) * dt) if outside.size else 0.0
    offset = path - start
    direction = target - start
    length = float(np.linalg.norm(direction))
    if length > 0:
        along = offset @ (direction / length)
        offset = offset - along[:, None] * (direction / length)
    max_deviation = float(np.max(np.linalg.norm(offset, axis=-1)))
    return ReachMetrics(final_error, time_to_reach, max_deviation)


def summarize(metrics: Sequence[ReachMetrics]) -> dict[str, float]:
    """Mean and max of each metric over reaches, and the number of misses.

    Parameters
    ----------
    metrics : sequence of ReachMetrics
        One entry per reach, e.g. from `ReachResult.metrics`.

    Returns
    -------
    dict
        ``final_error_mean``, ``final_error_max``, ``time_to_reach_mean``,
        ``time_to_reach_max``, ``max_deviation_mean``, ``max_deviation_max``,
        ``n_missed`` (reaches that ended outside the radius) and ``n_reaches``. The
        time statistics are over the reaches that were not missed (NaN if all were).

    Examples
    --------
    >>> from nengo_jacobian.arms import ReachMetrics, summarize
    >>> s = summarize([ReachMetrics(0.001, 0.4, 0.002),
    ...                ReachMetrics(0.05, float("inf"), 0.004)])
    >>> s["n_missed"], s["time_to_reach_max"], s["max_deviation_mean"]
    (1, 0.4, 0.003)
    """
    values = np.array([tuple(m) for m in metrics], dtype=np.float64).reshape(-1, 3)
    final, times, deviation = values.T
    hit = np.isfinite(times)
    summary: dict[str, float] = {
        "final_error_mean": float(np.mean(final)),
        "final_error_max": float(np.max(final)),
        "time_to_reach_mean": float(np.mean(times[hit])) if hit.any() else math.nan,
        "time_to_reach_max": float(np.max(times[hit])) if hit.any() else math.nan,
        "max_deviation_mean": float(np.mean(deviation)),
        "max_deviation_max": float(np.max(deviation)),
        "n_missed": int(np.sum(~hit)),
        "n_reaches": int(values.shape[0]),
    }
    return summary


def jacobian_relative_error(J_hat: ArrayLike, J: ArrayLike) -> FloatArray:
    """Per-sample relative Frobenius error ``‖Ĵ − J‖_F / ‖J‖_F``.

    Parameters
    ----------
    J_hat : array_like, shape (..., m, n)
        Estimated Jacobians.
    J : array_like, shape (..., m, n)
        Reference Jacobians.

    Returns
    -------
    ndarray, shape (...)
        Relative errors; take ``np.median`` / ``np.percentile(..., 95)`` over samples.

    Examples
    --------
    >>> import numpy as np
    >>> from nengo_jacobian.arms import jacobian_relative_error
    >>> J = np.eye(2)[None].repeat(3, axis=0)
    >>> jacobian_relative_error(1.1 * J, J).round(6)
    array([0.1, 0.1, 0.1])
    """
    J_hat = np.asarray(J_hat, dtype=np.float64)
    J = np.asarray(J, dtype=np.float64)
    return np.linalg.norm(J_hat - J, axis=(-2, -1)) / np.linalg.norm(J, axis=(-2, -1))
