"""Operational space control (Khatib 1987) with a pluggable Jacobian and hand estimate.

The controller turns a task-space PD law into joint torques through the task-space
inertia ``Mₓ = (J M⁻¹ Jᵀ)⁻¹``:

    u = Jᵀ Mₓ (kp (x* − x) − kv ẋ) + N uₙ + g(q),    ẋ = J q̇.

``J`` and ``x`` can come from anywhere — the arm's analytic kinematics by default, or a
neural network's ``Ĵ(q)`` and ``x̂(q)`` — while ``M`` and ``g`` come from the arm model.
With a measured ``x`` the loop still converges for an approximate ``J`` (Cheah, Liu &
Slotine 2006); the error shows up as curved paths rather than as final error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from nengo_jacobian.arms._base import Arm
from nengo_jacobian.arms._linalg import FloatArray, inv_sym_psd, solve, transpose

#: Something that gives a value at ``q``: an array, or a function of ``q``.
ValueOrFunction = ArrayLike | Callable[[FloatArray], ArrayLike]


class OSCTerms(NamedTuple):
    """The parts of an operational-space control torque, each ``(..., n_joints)``.

    Attributes
    ----------
    task : ndarray
        ``Jᵀ Mₓ (kp (x* − x) − kv ẋ)``: the task-space PD force mapped to joints. It is
        the "training signal" of adaptive control: an adaptive term ``u_adapt`` added
        to the torque learns with error ``−task`` (as in Nengo's PES rule), growing
        until the PD loop no longer has to push.
    null : ndarray
        Null-space torque (zero unless the controller has ``rest_q`` and the arm is
        redundant).
    gravity : ndarray
        Gravity compensation ``g(q)`` (zero if ``compensate_gravity=False``).
    """

    task: FloatArray
    null: FloatArray
    gravity: FloatArray

    @property
    def u(self) -> FloatArray:
        """The total control torque ``task + null + gravity``."""
        return self.task + self.null + self.gravity


def _at(value: ValueOrFunction | None, default: Callable, q: FloatArray) -> FloatArray:
    if value is None:
        return default(q)
    if callable(value):
        return np.asarray(value(q), dtype=np.float64)
    return np.asarray(value, dtype=np.float64)


class OperationalSpaceController:
    """Operational space controller for the hand position of a planar arm.

    Parameters
    ----------
    arm : Arm
        Supplies ``M(q)`` and ``g(q)``, and the default ``J(q)`` and ``x(q)``.
    kp : float
        Task-space stiffness in 1/s² (force per metre per unit task inertia).
    kv : float, optional
        Task-space damping in 1/s. Default ``1.5·√kp`` (damping ratio 0.75), the REACH
        model's choice.
    compensate_gravity : bool
        Add ``g(q)``. Switch off to leave gravity for an adaptive term to learn.
    rest_q : array_like, shape (n_joints,), optional
        For redundant arms: a resting posture pulled towards in the Jacobian's null
        space, ``uₙ = M (kn (rest_q − q) − kv_null q̇)``, projected with
        ``N = I − Jᵀ (M⁻¹ Jᵀ Mₓ)ᵀ`` so it does not disturb the hand.
    kn : float
        Null-space stiffness (only used with ``rest_q``).
    kv_null : float, optional
        Null-space damping; default ``1.5·√kn``.
    rcond : float
        ``J M⁻¹ Jᵀ`` is inverted exactly unless its smallest eigenvalue is below
        ``rcond`` times its largest (near a singularity); then directions below that
        cutoff are dropped (truncated pseudo-inverse), which keeps torques bounded.

    Examples
    --------
    The analytic controller, and the same controller fed a Jacobian from elsewhere
    (here a constant matrix standing in for a network's ``Ĵ(q)``):

    >>> import numpy as np
    >>> from nengo_jacobian.arms import OperationalSpaceController, TwoLinkArm
    >>> arm = TwoLinkArm()
    >>> ctrl = OperationalSpaceController(arm, kp=50)
    >>> q, dq, target = np.array([0.6, 2.2]), np.zeros(2), np.array([0.1, 1.3])
    >>> u = ctrl(q, dq, target)
    >>> u_hat = ctrl(q, dq, target, J=arm.jacobian(q) * 1.01)
    >>> bool(np.allclose(u_hat, u, rtol=0.02))
    True

    A function of ``q`` works too, and so does a hand estimate ``x``:

    >>> terms = ctrl.terms(q, dq, target, J=arm.jacobian, x=arm.fk(q))
    >>> bool(np.allclose(terms.u, u))
    True
    """

    def __init__(
        self,
        arm: Arm,
        kp: float = 50.0,
        kv: float | None = None,
        *,
        compensate_gravity: bool = True,
        rest_q: ArrayLike | None = None,
        kn: float = 20.0,
        kv_null: float | None = None,
        rcond: float = 1e-4,
    ) -> None:
        gains = {"kp": kp, "kv": kv, "kn": kn, "kv_null": kv_null}
        for name, gain in gains.items():
            if gain is not None and not float(gain) >= 0:
                raise ValueError(f"`{name}` must be a non-negative gain; got {gain}.")
        self.arm = arm
        self.kp = float(kp)
        self.kv = 1.5 * np.sqrt(self.kp) if kv is None else float(kv)
        self.kn = float(kn)
        self.kv_null = 1.5 * np.sqrt(self.kn) if kv_null is None else float(kv_null)
        self.compensate_gravity = bool(compensate_gravity)
        self.rest_q = None
        if rest_q is not None:
            self.rest_q = np.array(rest_q, dtype=np.float64)
            if self.rest_q.shape != (arm.n_joints,):
                raise ValueError(
                    f"`rest_q` must have one angle per joint, shape ({arm.n_joints},); "
                    f"got shape {self.rest_q.shape}."
                )
        self.rcond = float(rcond)

    def __repr__(self) -> str:
        return (
            f"OperationalSpaceController({self.arm!r}, kp={self.kp:g}, kv={self.kv:g})"
        )

    def terms(
        self,
        q: ArrayLike,
        dq: ArrayLike,
        target: ArrayLike,
        *,
        J: ValueOrFunction | None = None,
        x: ValueOrFunction | None = None,
    ) -> OSCTerms:
        """The control torque split into task, null-space and gravity parts.

        Parameters
        ----------
        q, dq : array_like, shape (..., n_joints)
            Measured joint angles (rad) and velocities (rad/s).
        target : array_like, shape (..., 2)
            Desired hand position ``x*`` in metres.
        J : array_like or callable, optional
            The hand Jacobian to use, shape ``(..., 2, n_joints)``, or a function
            ``q -> J``. Default: the arm's analytic `~Arm.jacobian`. The hand velocity
            is estimated as ``ẋ = J q̇`` with this same ``J``.
        x : array_like or callable, optional
            The hand position to use, shape ``(..., 2)``, or a function ``q -> x``.
            Default: the arm's analytic `~Arm.fk` (a perfect position sensor).

        Returns
        -------
        OSCTerms
            ``task`` (the adaptive-control training signal), ``null`` and ``gravity``;
            their sum is ``.u``.
        """
        q = np.asarray(q, dtype=np.float64)
        dq = np.asarray(dq, dtype=np.float64)
        jac = _at(J, self.arm.jacobian, q)
        hand = _at(x, self.arm.fk, q)
        if jac.shape[-2:] != (self.arm.task_dims, self.arm.n_joints):
            raise ValueError(
                f"`J` must have shape (..., {self.arm.task_dims}, {self.arm.n_joints}) "
                f"for this arm; got shape {jac.shape}."
            )
        mass = self.arm.mass_matrix(q)
        jac_t = transpose(jac)
        minv_jt = solve(mass, jac_t)
        mx = inv_sym_psd(jac @ minv_jt, self.rcond)
        dx = (jac @ dq[..., None])[..., 0]
        force = self.kp * (np.asarray(target, dtype=np.float64) - hand) - self.kv * dx
        task = (jac_t @ (mx @ force[..., None]))[..., 0]
        null = np.zeros(task.shape)
        if self.rest_q is not None and self.arm.n_joints > self.arm.task_dims:
            u_null = mass @ (self.kn * (self.rest_q - q) - self.kv_null * dq)[..., None]
            # N = I - Jᵀ J̄ᵀ with the dynamically consistent inverse J̄ = M⁻¹ Jᵀ Mₓ
            jbar = minv_jt @ mx
            null = (u_null - jac_t @ (transpose(jbar) @ u_null))[..., 0]
        gravity = (
            self.arm.gravity(q) if self.compensate_gravity else np.zeros(task.shape)
        )
        return OSCTerms(task, null, gravity)

    def __call__(
        self,
        q: ArrayLike,
        dq: ArrayLike,
        target: ArrayLike,
        *,
        J: ValueOrFunction | None = None,
        x: ValueOrFunction | None = None,
    ) -> FloatArray:
        """The control torque ``u = task + null + gravity`` (see `terms`).

        Parameters
        ----------
        q, dq : array_like, shape (..., n_joints)
            Measured joint angles (rad) and velocities (rad/s).
        target : array_like, shape (..., 2)
            Desired hand position in metres.
        J : array_like or callable, optional
            Hand Jacobian or a function ``q -> J``; default analytic.
        x : array_like or callable, optional
            Hand position or a function ``q -> x``; default analytic.

        Returns
        -------
        u : ndarray, shape (..., n_joints)
            Joint torques in N·m.
        """
        return self.terms(q, dq, target, J=J, x=x).u


def corrupt_jacobian(
    jacobian: Callable[[FloatArray], ArrayLike],
    fraction: float,
    rng: np.random.Generator,
    *,
    shape: tuple[int, int] = (2, 2),
) -> Callable[[FloatArray], FloatArray]:
    """A Jacobian with a fixed, structured error, for negative-control experiments.

    Returns ``q -> J(q) + fraction · ‖J(q)‖_F · E`` with one random matrix ``E`` of unit
    Frobenius norm, drawn once, so the relative error is exactly ``fraction``
    everywhere and always points the same way (unlike noise, it does not average out).

    Parameters
    ----------
    jacobian : callable
        ``q -> J``, e.g. ``arm.jacobian``.
    fraction : float
        Relative Frobenius error, e.g. ``0.5`` for 50 %.
    rng : numpy.random.Generator
        Source of ``E``.
    shape : tuple of int
        Shape of ``J`` (task dims, joints).

    Returns
    -------
    callable
        The corrupted Jacobian function.

    Examples
    --------
    >>> import numpy as np
    >>> from nengo_jacobian.arms import TwoLinkArm, corrupt_jacobian
    >>> from nengo_jacobian.arms import jacobian_relative_error
    >>> arm = TwoLinkArm()
    >>> bad = corrupt_jacobian(arm.jacobian, 0.5, np.random.default_rng(0))
    >>> q = np.array([0.6, 2.2])
    >>> float(jacobian_relative_error(bad(q), arm.jacobian(q)).round(6))
    0.5
    """
    error = rng.standard_normal(shape)
    error /= np.linalg.norm(error)
    fraction = float(fraction)

    def corrupted(q: FloatArray) -> FloatArray:
        jac = np.asarray(jacobian(q), dtype=np.float64)
        norm = np.linalg.norm(jac, axis=(-2, -1))[..., None, None]
        return jac + fraction * norm * error

    return corrupted
