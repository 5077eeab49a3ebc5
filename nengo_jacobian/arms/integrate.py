"""Fixed-step integrators for ``M(q) q̈ + C(q, q̇) q̇ + g(q) = τ``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from nengo_jacobian.arms._base import Arm
from nengo_jacobian.arms._linalg import FloatArray

Stepper = Callable[
    [Arm, FloatArray, FloatArray, FloatArray, float], tuple[FloatArray, FloatArray]
]


def _semi_implicit_euler(
    arm: Arm, q: FloatArray, dq: FloatArray, tau: FloatArray, dt: float
) -> tuple[FloatArray, FloatArray]:
    # the new velocity moves the position: symplectic, stable for stiff control at 1 ms
    dq = dq + dt * arm.forward_dynamics(q, dq, tau)
    return q + dt * dq, dq


def _rk4(
    arm: Arm, q: FloatArray, dq: FloatArray, tau: FloatArray, dt: float
) -> tuple[FloatArray, FloatArray]:
    k1q, k1v = dq, arm.forward_dynamics(q, dq, tau)
    q2, v2 = q + 0.5 * dt * k1q, dq + 0.5 * dt * k1v
    k2q, k2v = v2, arm.forward_dynamics(q2, v2, tau)
    q3, v3 = q + 0.5 * dt * k2q, dq + 0.5 * dt * k2v
    k3q, k3v = v3, arm.forward_dynamics(q3, v3, tau)
    q4, v4 = q + dt * k3q, dq + dt * k3v
    k4q, k4v = v4, arm.forward_dynamics(q4, v4, tau)
    return (
        q + dt / 6 * (k1q + 2 * k2q + 2 * k3q + k4q),
        dq + dt / 6 * (k1v + 2 * k2v + 2 * k3v + k4v),
    )


_STEPPERS: dict[str, Stepper] = {
    "semi_implicit_euler": _semi_implicit_euler,
    "rk4": _rk4,
}

#: Names accepted by `step`'s ``method``.
METHODS = tuple(_STEPPERS)


def get_stepper(method: str) -> Stepper:
    """The integrator function for ``method`` (see `step`), looked up once per loop."""
    try:
        return _STEPPERS[method]
    except KeyError:
        raise ValueError(
            f"Unknown integration method {method!r}; valid methods are "
            f"{', '.join(repr(m) for m in METHODS)}."
        ) from None


def step(
    arm: Arm,
    q: ArrayLike,
    dq: ArrayLike,
    tau: ArrayLike,
    dt: float,
    method: str = "semi_implicit_euler",
) -> tuple[FloatArray, FloatArray]:
    """Advance the arm's state by one time step with the torque held constant.

    Parameters
    ----------
    arm : Arm
        The arm (`TwoLinkArm` or `PlanarArm`).
    q, dq : array_like, shape (..., n_joints)
        Joint angles (rad) and velocities (rad/s) at the start of the step.
    tau : array_like, shape (..., n_joints)
        Joint torques (N·m), held constant over the step (zero-order hold).
    dt : float
        Step length in seconds.
    method : {"semi_implicit_euler", "rk4"}
        ``"semi_implicit_euler"`` updates the velocity first and moves with the new
        velocity (one dynamics evaluation; the measured REACH numbers use it at 1 ms).
        ``"rk4"`` is classical fourth-order Runge–Kutta (four evaluations), accurate
        enough to check energy conservation.

    Returns
    -------
    q, dq : ndarray, shape (..., n_joints)
        State at the end of the step.

    Examples
    --------
    With no torque, a resting arm stays at rest:

    >>> import numpy as np
    >>> from nengo_jacobian.arms import TwoLinkArm, step
    >>> q, dq = step(TwoLinkArm(), [0.6, 2.2], [0.0, 0.0], [0.0, 0.0], dt=1e-3)
    >>> q, dq
    (array([0.6, 2.2]), array([0., 0.]))
    """
    stepper = get_stepper(method)
    return stepper(
        arm,
        np.asarray(q, dtype=np.float64),
        np.asarray(dq, dtype=np.float64),
        np.asarray(tau, dtype=np.float64),
        float(dt),
    )
