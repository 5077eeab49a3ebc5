"""The REACH centre-out task: targets, joint box, curl field and a closed-loop runner.

The task follows DeWolf et al. (2016): eight targets 25 cm around (0, 1.25) m, reached
out and back from the centre (16 reaches of 1 s each) by the REACH two-link arm under
operational space control with kp = 50 and kv = 1.5·√kp.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from nengo_jacobian.arms._base import Arm
from nengo_jacobian.arms._linalg import FloatArray
from nengo_jacobian.arms.integrate import get_stepper
from nengo_jacobian.arms.metrics import ReachMetrics, reaching_metrics, summarize

#: Centre of the REACH centre-out task, in metres.
REACH_CENTRE: tuple[float, float] = (0.0, 1.25)

#: ``controller_fn(q, dq, target, t) -> tau``
ControllerFn = Callable[[FloatArray, FloatArray, FloatArray, float], ArrayLike]
#: ``external_force(q, dq) -> tau``
ForceFn = Callable[[FloatArray, FloatArray], ArrayLike]


@dataclass(frozen=True)
class JointBox:
    """An axis-aligned box of joint angles, ``centre ± half_width``.

    Networks that learn kinematics see joint angles scaled into ``[-1, 1]`` per joint
    (a Nengo ensemble of radius 1); `to_unit` and `from_unit` do that scaling.

    Parameters
    ----------
    centre : tuple of float
        Centre of the box, one angle per joint (rad).
    half_width : float or tuple of float
        Half the side length (rad), shared or one per joint.

    Examples
    --------
    >>> import numpy as np
    >>> from nengo_jacobian.arms import REACH_JOINT_BOX
    >>> REACH_JOINT_BOX.to_unit([0.15, 2.68])
    array([-1.,  1.])
    >>> REACH_JOINT_BOX.from_unit([0.0, 0.0])
    array([0.6 , 2.23])
    """

    centre: tuple[float, ...]
    half_width: float | tuple[float, ...]

    def _arrays(self) -> tuple[FloatArray, FloatArray]:
        centre = np.asarray(self.centre, dtype=np.float64)
        return centre, np.broadcast_to(
            np.asarray(self.half_width, dtype=np.float64), centre.shape
        )

    def sample(self, n: int, rng: np.random.Generator) -> FloatArray:
        """``n`` joint vectors drawn uniformly from the box, shape ``(n, n_joints)``."""
        centre, half = self._arrays()
        return centre + half * rng.uniform(-1.0, 1.0, size=(n, centre.shape[0]))

    def to_unit(self, q: ArrayLike) -> FloatArray:
        """Map joint angles ``(..., n_joints)`` affinely so the box becomes [-1, 1]."""
        centre, half = self._arrays()
        return (np.asarray(q, dtype=np.float64) - centre) / half

    def from_unit(self, s: ArrayLike) -> FloatArray:
        """Inverse of `to_unit`: scaled values ``(..., n_joints)`` back to radians."""
        centre, half = self._arrays()
        return centre + half * np.asarray(s, dtype=np.float64)

    def contains(self, q: ArrayLike) -> FloatArray:
        """Whether each joint vector in ``q`` ``(..., n_joints)`` lies in the box."""
        return np.all(np.abs(self.to_unit(q)) <= 1.0, axis=-1)


#: Joint box covering the REACH task, ``(0.60, 2.23) ± 0.45`` rad.
REACH_JOINT_BOX = JointBox(centre=(0.60, 2.23), half_width=0.45)


def sample_joint_box(
    n: int, rng: np.random.Generator, box: JointBox = REACH_JOINT_BOX
) -> FloatArray:
    """Draw ``n`` joint vectors uniformly from ``box`` (default: the REACH box).

    Parameters
    ----------
    n : int
        Number of samples.
    rng : numpy.random.Generator
        Random source.
    box : JointBox
        The box; default ``(0.60, 2.23) ± 0.45`` rad.

    Returns
    -------
    q : ndarray, shape (n, n_joints)
        Joint angles in radians.

    Examples
    --------
    >>> import numpy as np
    >>> from nengo_jacobian.arms import REACH_JOINT_BOX, sample_joint_box
    >>> q = sample_joint_box(2000, np.random.default_rng(0))
    >>> q.shape, bool(REACH_JOINT_BOX.contains(q).all())
    ((2000, 2), True)
    """
    return box.sample(n, rng)


def centre_out_targets(
    n: int = 8, radius: float = 0.25, centre: ArrayLike = REACH_CENTRE
) -> FloatArray:
    """``n`` targets evenly spaced on a circle, the first one to the right of centre.

    Parameters
    ----------
    n : int
        Number of targets.
    radius : float
        Distance from the centre in metres.
    centre : array_like, shape (2,)
        Centre of the circle in metres.

    Returns
    -------
    targets : ndarray, shape (n, 2)

    Examples
    --------
    >>> from nengo_jacobian.arms import centre_out_targets
    >>> centre_out_targets(4).round(3) + 0.0
    array([[ 0.25,  1.25],
           [ 0.  ,  1.5 ],
           [-0.25,  1.25],
           [ 0.  ,  1.  ]])
    """
    angles = 2 * np.pi * np.arange(n) / n
    offsets = radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    return np.asarray(centre, dtype=np.float64) + offsets


def out_and_back(targets: ArrayLike, centre: ArrayLike = REACH_CENTRE) -> FloatArray:
    """The reach sequence target₁, centre, target₂, centre, … (two reaches per target).

    Parameters
    ----------
    targets : array_like, shape (n, 2)
        Outer targets, e.g. from `centre_out_targets`.
    centre : array_like, shape (2,)
        Where each reach returns to (and where the first one starts).

    Returns
    -------
    sequence : ndarray, shape (2 n, 2)

    Examples
    --------
    >>> from nengo_jacobian.arms import centre_out_targets, out_and_back
    >>> out_and_back(centre_out_targets()).shape
    (16, 2)
    """
    targets = np.asarray(targets, dtype=np.float64)
    centre = np.broadcast_to(np.asarray(centre, dtype=np.float64), targets.shape)
    return np.stack([targets, centre], axis=1).reshape(-1, targets.shape[-1])


@dataclass(frozen=True, eq=False)
class CurlField:
    """A velocity-dependent joint-torque field ``τ = matrix · q̇``.

    Use `curl_field` to build the Shadmehr & Mussa-Ivaldi (1994) field of the REACH
    adaptation task. Instances are callables ``(q, dq) -> τ`` suitable as
    `run_reaches`'s ``external_force``.

    Parameters
    ----------
    matrix : ndarray, shape (n_joints, n_joints)
        Viscous coupling in N·m·s/rad.
    """

    matrix: FloatArray

    def __call__(self, q: ArrayLike, dq: ArrayLike) -> FloatArray:
        """Joint torques ``(..., n_joints)`` at velocity ``dq`` (``q`` is unused)."""
        return np.asarray(dq, dtype=np.float64) @ self.matrix.T


def curl_field(scale: float = 0.4) -> CurlField:
    """The curl force field ``τ = scale · [[-10.1, -11.1], [-11.2, 11.1]] · q̇``.

    The matrix is Shadmehr & Mussa-Ivaldi's (1994) viscous field, applied as joint
    torques and scaled by 0.4 as in the REACH model's adaptation task. Without
    compensation it bends reaches and leaves most of them short of the target.

    Parameters
    ----------
    scale : float
        Strength relative to the original field.

    Returns
    -------
    CurlField

    Examples
    --------
    >>> from nengo_jacobian.arms import curl_field
    >>> curl_field()([0.6, 2.2], [1.0, 0.0]).round(2)
    array([-4.04, -4.48])
    """
    matrix = float(scale) * np.array([[-10.1, -11.1], [-11.2, 11.1]])
    matrix.setflags(write=False)
    return CurlField(matrix)


@dataclass(frozen=True, eq=False)
class ReachResult:
    """Trajectories of a sequence of reaches, as returned by `run_reaches`.

    Attributes
    ----------
    t : ndarray, shape (n_steps + 1,)
        Time since the start of each reach, ``k·dt``.
    q, dq : ndarray, shape (n_reaches, n_steps + 1, n_joints)
        Joint angles and velocities. Sample 0 of reach ``r + 1`` repeats the last
        sample of reach ``r``.
    u : ndarray, shape (n_reaches, n_steps, n_joints)
        Controller torques (without the external force) for each step.
    hand : ndarray, shape (n_reaches, n_steps + 1, 2)
        True hand positions ``arm.fk(q)``.
    targets : ndarray, shape (n_reaches, 2)
        Target of each reach.
    dt : float
        Time step in seconds.
    """

    t: FloatArray
    q: FloatArray
    dq: FloatArray
    u: FloatArray
    hand: FloatArray
    targets: FloatArray
    dt: float

    @property
    def starts(self) -> FloatArray:
        """Hand position at the start of each reach, shape ``(n_reaches, 2)``."""
        return self.hand[:, 0]

    def metrics(self, reached: float = 0.02) -> list[ReachMetrics]:
        """`reaching_metrics` of every reach (start: the hand's actual start)."""
        return [
            reaching_metrics(path, start, target, self.dt, reached)
            for path, start, target in zip(self.hand, self.starts, self.targets)
        ]

    def summary(self, reached: float = 0.02) -> dict[str, float]:
        """`summarize` of `metrics`: means, maxima and the number of misses."""
        return summarize(self.metrics(reached))


def run_reaches(
    arm: Arm,
    controller_fn: ControllerFn,
    targets: ArrayLike,
    *,
    q0: ArrayLike,
    dq0: ArrayLike | None = None,
    dt: float = 1e-3,
    reach_time: float = 1.0,
    external_force: ForceFn | None = None,
    method: str = "semi_implicit_euler",
) -> ReachResult:
    """Simulate the arm reaching to each target in turn under a controller.

    Each step calls ``controller_fn(q, dq, target, t)`` for the torques, adds
    ``external_force(q, dq)`` if given (both held over the step), and integrates.

    Parameters
    ----------
    arm : Arm
        The plant.
    controller_fn : callable
        ``(q, dq, target, t) -> tau`` with ``t`` the time since the first reach
        started. Wrap state (a Jacobian refreshed every k steps, adaptive weights) in a
        closure or an object with ``__call__``.
    targets : array_like, shape (n_reaches, 2)
        Target of each reach, e.g. ``out_and_back(centre_out_targets())``.
    q0 : array_like, shape (n_joints,)
        Initial joint angles, e.g. ``arm.inverse_kinematics(REACH_CENTRE)``.
    dq0 : array_like, shape (n_joints,), optional
        Initial joint velocities; default zero.
    dt : float
        Time step in seconds.
    reach_time : float
        Duration of each reach in seconds (a whole number of steps).
    external_force : callable, optional
        ``(q, dq) -> tau`` added to the controller's torque, e.g. `curl_field`.
    method : {"semi_implicit_euler", "rk4"}
        Integrator (see `step`).

    Returns
    -------
    ReachResult

    Examples
    --------
    >>> import numpy as np
    >>> from nengo_jacobian.arms import (REACH_CENTRE, OperationalSpaceController,
    ...     TwoLinkArm, centre_out_targets, out_and_back, run_reaches)
    >>> arm = TwoLinkArm()
    >>> ctrl = OperationalSpaceController(arm, kp=50)
    >>> result = run_reaches(
    ...     arm, lambda q, dq, target, t: ctrl(q, dq, target),
    ...     out_and_back(centre_out_targets(2)),
    ...     q0=arm.inverse_kinematics(REACH_CENTRE))
    >>> result.hand.shape
    (4, 1001, 2)
    >>> s = result.summary()
    >>> s["n_missed"], s["final_error_max"] < 0.003
    (0, True)
    """
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or targets.shape[1] != arm.task_dims:
        raise ValueError(
            f"`targets` must have shape (n_reaches, {arm.task_dims}); got shape "
            f"{targets.shape}."
        )
    n_steps = round(reach_time / dt)
    if n_steps < 1 or not math.isclose(n_steps * dt, reach_time, rel_tol=1e-9):
        raise ValueError(
            f"`reach_time` must be a positive whole number of steps of dt={dt}; got "
            f"reach_time={reach_time}."
        )
    stepper = get_stepper(method)
    n = arm.n_joints
    q = np.array(q0, dtype=np.float64)
    dq = np.zeros(n) if dq0 is None else np.array(dq0, dtype=np.float64)
    if q.shape != (n,) or dq.shape != (n,):
        raise ValueError(
            f"`q0` and `dq0` must have shape ({n},); got {q.shape} and {dq.shape}."
        )
    n_reaches = targets.shape[0]
    qs = np.empty((n_reaches, n_steps + 1, n))
    dqs = np.empty((n_reaches, n_steps + 1, n))
    us = np.empty((n_reaches, n_steps, n))
    dt = float(dt)
    for r in range(n_reaches):
        target = targets[r]
        qs[r, 0], dqs[r, 0] = q, dq
        t0 = r * n_steps
        for k in range(n_steps):
            tau = np.asarray(controller_fn(q, dq, target, (t0 + k) * dt))
            us[r, k] = tau
            if external_force is not None:
                tau = tau + external_force(q, dq)
            q, dq = stepper(arm, q, dq, tau, dt)
            qs[r, k + 1] = q
            dqs[r, k + 1] = dq
    return ReachResult(
        t=np.arange(n_steps + 1) * dt,
        q=qs,
        dq=dqs,
        u=us,
        hand=arm.fk(qs),
        targets=targets,
        dt=dt,
    )
