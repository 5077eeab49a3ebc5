"""Closed-form planar two-link arm.

Equations of the planar elbow manipulator in Spong, Hutchinson & Vidyasagar, *Robot
Modeling and Control* (2006), ch. 7, with gravity acting in the arm's plane.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from nengo_jacobian.arms._base import Arm, _joints
from nengo_jacobian.arms._linalg import FloatArray


class TwoLinkArm(Arm):
    """Planar two-link arm with closed-form kinematics and dynamics.

    The defaults are the arm of the REACH model (DeWolf et al. 2016): upper arm and
    forearm of 1.5 m and 1.3 m, 1.98 kg and 1.32 kg, inertias 0.4 and 0.2 kg·m² about
    centres of mass at mid-link, moving in a horizontal plane (no gravity).

    With ``lc`` the centre-of-mass distances and ``c2 = cos q₂``, the inertia matrix is
    ``M = [[a + 2b c2, d + b c2], [d + b c2, d]]`` with ``a = m₁lc₁² + m₂(l₁² + lc₂²) +
    I₁ + I₂``, ``b = m₂ l₁ lc₂`` and ``d = m₂ lc₂² + I₂``; ``C`` holds the Christoffel
    terms, so that ``Ṁ − 2C`` is skew-symmetric.

    Parameters
    ----------
    lengths : array_like, shape (2,)
        Link lengths in metres.
    masses : array_like, shape (2,)
        Link masses in kilograms.
    izz : array_like, shape (2,)
        Moments of inertia about each link's centre of mass, in kg·m².
    com : array_like, shape (2,), optional
        Joint-to-centre-of-mass distances. Default: half the link lengths.
    gravity_vector : array_like, shape (2,), optional
        Gravitational acceleration in the arm's plane (m/s²). Default: zero.

    See Also
    --------
    PlanarArm : the same interface for any number of links.

    Examples
    --------
    >>> import numpy as np
    >>> from nengo_jacobian.arms import TwoLinkArm
    >>> arm = TwoLinkArm()
    >>> arm.fk([0.0, np.pi / 2]).round(3)
    array([1.5, 1.3])
    >>> arm.jacobian(np.zeros((2000, 2))).shape  # batched over leading axes
    (2000, 2, 2)
    """

    def __init__(
        self,
        lengths: ArrayLike = (1.5, 1.3),
        masses: ArrayLike = (1.98, 1.32),
        izz: ArrayLike = (0.4, 0.2),
        com: ArrayLike | None = None,
        gravity_vector: ArrayLike | None = None,
    ) -> None:
        super().__init__(lengths, masses, izz, com, gravity_vector)
        if self.n_joints != 2:
            raise ValueError(
                f"TwoLinkArm has exactly 2 links; got {self.n_joints} lengths. Use "
                f"PlanarArm for other numbers of links."
            )
        # Python floats: scalar arithmetic on them is what a 1 kHz loop pays for
        self._l1, self._l2 = (float(v) for v in self.lengths)
        m1, m2 = (float(v) for v in self.masses)
        i1, i2 = (float(v) for v in self.izz)
        lc1, lc2 = (float(v) for v in self.com)
        self._a = m1 * lc1**2 + m2 * (self._l1**2 + lc2**2) + i1 + i2
        self._b = m2 * self._l1 * lc2
        self._d = m2 * lc2**2 + i2
        # first moments of mass along link 1 and link 2 (for gravity)
        self._k1 = m1 * lc1 + m2 * self._l1
        self._k2 = m2 * lc2
        self._gx, self._gy = (float(v) for v in self.gravity_vector)

    def fk(self, q: ArrayLike) -> FloatArray:
        """Hand position ``(l₁ cos q₁ + l₂ cos(q₁+q₂), l₁ sin q₁ + l₂ sin(q₁+q₂))``.

        Parameters
        ----------
        q : array_like, shape (..., 2)
            Joint angles in radians.

        Returns
        -------
        x : ndarray, shape (..., 2)
            Hand position in metres.
        """
        q = _joints(q, 2)
        q1 = q[..., 0]
        q12 = q1 + q[..., 1]
        x = np.empty(q.shape)
        x[..., 0] = self._l1 * np.cos(q1) + self._l2 * np.cos(q12)
        x[..., 1] = self._l1 * np.sin(q1) + self._l2 * np.sin(q12)
        return x

    def inverse_kinematics(self, x: ArrayLike, *, elbow: int = 1) -> FloatArray:
        """Joint angles that put the hand at ``x``.

        Parameters
        ----------
        x : array_like, shape (..., 2)
            Hand positions in metres.
        elbow : {1, -1}
            Sign of the elbow angle ``q₂``. ``1`` gives the REACH task's posture.

        Returns
        -------
        q : ndarray, shape (..., 2)
            Joint angles with ``q₂`` in ``[0, π]`` (``elbow=1``) or ``[-π, 0]``.

        Examples
        --------
        >>> from nengo_jacobian.arms import TwoLinkArm
        >>> arm = TwoLinkArm()
        >>> q = arm.inverse_kinematics([0.0, 1.25])
        >>> q.round(3)
        array([0.602, 2.226])
        >>> arm.fk(q).round(12) + 0.0
        array([0.  , 1.25])
        """
        if elbow not in (1, -1):
            raise ValueError(
                f"`elbow` must be 1 or -1 (the sign of q[1]); got {elbow!r}."
            )
        x = _joints(x, 2, "x")
        l1, l2 = self._l1, self._l2
        cos_q2 = (np.sum(x**2, axis=-1) - l1**2 - l2**2) / (2 * l1 * l2)
        if np.any(np.abs(cos_q2) > 1):
            raise ValueError(
                f"Some of `x` is out of reach: the hand's distance from the base "
                f"must be within [{abs(l1 - l2)}, {l1 + l2}] m; got "
                f"{np.hypot(x[..., 0], x[..., 1])}."
            )
        q2 = elbow * np.arccos(cos_q2)
        q1 = np.arctan2(x[..., 1], x[..., 0]) - np.arctan2(
            l2 * np.sin(q2), l1 + l2 * np.cos(q2)
        )
        return np.stack([q1, q2], axis=-1)

    def jacobian(self, q: ArrayLike) -> FloatArray:
        """Hand Jacobian ``∂x/∂q``.

        Parameters
        ----------
        q : array_like, shape (..., 2)
            Joint angles in radians.

        Returns
        -------
        J : ndarray, shape (..., 2, 2)
            ``J[..., i, j] = ∂x_i/∂q_j`` in metres per radian.
        """
        q = _joints(q, 2)
        q1 = q[..., 0]
        q12 = q1 + q[..., 1]
        s12 = self._l2 * np.sin(q12)
        c12 = self._l2 * np.cos(q12)
        jac = np.empty(q.shape + (2,))
        jac[..., 0, 0] = -self._l1 * np.sin(q1) - s12
        jac[..., 0, 1] = -s12
        jac[..., 1, 0] = self._l1 * np.cos(q1) + c12
        jac[..., 1, 1] = c12
        return jac

    def jacobian_dot(self, q: ArrayLike, dq: ArrayLike) -> FloatArray:
        """Time derivative ``J̇ = Σ_k ∂J/∂q_k q̇_k`` of the hand Jacobian.

        Parameters
        ----------
        q, dq : array_like, shape (..., 2)
            Joint angles (rad) and velocities (rad/s).

        Returns
        -------
        dJ : ndarray, shape (..., 2, 2)
            ``J̇``, so that the hand acceleration is ``J q̈ + J̇ q̇``.
        """
        q = _joints(q, 2)
        dq = _joints(dq, 2, "dq")
        q1 = q[..., 0]
        q12 = q1 + q[..., 1]
        w1 = dq[..., 0]
        w12 = w1 + dq[..., 1]
        c12 = self._l2 * np.cos(q12) * w12
        s12 = self._l2 * np.sin(q12) * w12
        djac = np.empty(np.broadcast_shapes(q.shape, dq.shape) + (2,))
        djac[..., 0, 0] = -self._l1 * np.cos(q1) * w1 - c12
        djac[..., 0, 1] = -c12
        djac[..., 1, 0] = -self._l1 * np.sin(q1) * w1 - s12
        djac[..., 1, 1] = -s12
        return djac

    def mass_matrix(self, q: ArrayLike) -> FloatArray:
        """Joint-space inertia matrix ``M(q)``, symmetric positive definite.

        Parameters
        ----------
        q : array_like, shape (..., 2)
            Joint angles in radians.

        Returns
        -------
        M : ndarray, shape (..., 2, 2)
            Inertia in kg·m².
        """
        q = _joints(q, 2)
        bc2 = self._b * np.cos(q[..., 1])
        mass = np.empty(q.shape + (2,))
        mass[..., 0, 0] = self._a + 2 * bc2
        mass[..., 0, 1] = mass[..., 1, 0] = self._d + bc2
        mass[..., 1, 1] = self._d
        return mass

    def coriolis(self, q: ArrayLike, dq: ArrayLike) -> FloatArray:
        """Coriolis and centrifugal matrix ``C(q, q̇)`` from Christoffel symbols.

        ``C q̇`` is the velocity-dependent torque, and ``Ṁ − 2C`` is skew-symmetric.

        Parameters
        ----------
        q, dq : array_like, shape (..., 2)
            Joint angles (rad) and velocities (rad/s).

        Returns
        -------
        C : ndarray, shape (..., 2, 2)
            In kg·m²/s.
        """
        q = _joints(q, 2)
        dq = _joints(dq, 2, "dq")
        h = -self._b * np.sin(q[..., 1])
        w1 = dq[..., 0]
        w2 = dq[..., 1]
        cor = np.empty(np.broadcast_shapes(q.shape, dq.shape) + (2,))
        cor[..., 0, 0] = h * w2
        cor[..., 0, 1] = h * (w1 + w2)
        cor[..., 1, 0] = -h * w1
        cor[..., 1, 1] = 0.0
        return cor

    def forward_dynamics(
        self, q: ArrayLike, dq: ArrayLike, tau: ArrayLike
    ) -> FloatArray:
        """Joint accelerations from ``M(q) q̈ + C(q, q̇) q̇ + g(q) = τ`` in closed form.

        Parameters
        ----------
        q, dq, tau : array_like, shape (..., 2)
            Joint angles (rad), velocities (rad/s) and applied torques (N·m).

        Returns
        -------
        ddq : ndarray, shape (..., 2)
            Joint accelerations in rad/s².
        """
        q = _joints(q, 2)
        dq = _joints(dq, 2, "dq")
        # one fused evaluation: this runs four times per RK4 step in the closed loop
        c2 = np.cos(q[..., 1])
        h = -self._b * np.sin(q[..., 1])
        w1 = dq[..., 0]
        w2 = dq[..., 1]
        rhs = np.asarray(tau, dtype=np.float64) - self.gravity(q)
        r1 = rhs[..., 0] - h * w2 * (2 * w1 + w2)
        r2 = rhs[..., 1] + h * w1 * w1
        m11 = self._a + 2 * self._b * c2
        m12 = self._d + self._b * c2
        inv_det = 1.0 / (m11 * self._d - m12 * m12)
        ddq = np.empty(np.broadcast_shapes(q.shape, dq.shape, rhs.shape))
        ddq[..., 0] = (self._d * r1 - m12 * r2) * inv_det
        ddq[..., 1] = (m11 * r2 - m12 * r1) * inv_det
        return ddq

    def gravity(self, q: ArrayLike) -> FloatArray:
        """Gravity torques ``g(q) = ∂V/∂q`` (zero in a horizontal plane).

        Parameters
        ----------
        q : array_like, shape (..., 2)
            Joint angles in radians.

        Returns
        -------
        g : ndarray, shape (..., 2)
            Torques in N·m that the motors must supply to hold the arm still.
        """
        q = _joints(q, 2)
        if self._gx == 0 and self._gy == 0:
            return np.zeros(q.shape)
        q1 = q[..., 0]
        q12 = q1 + q[..., 1]
        # -m g·(∂p/∂q); ∂(cos θ, sin θ)/∂θ = (-sin θ, cos θ)
        g2 = -self._k2 * (-self._gx * np.sin(q12) + self._gy * np.cos(q12))
        torque = np.empty(q.shape)
        g1 = -self._k1 * (-self._gx * np.sin(q1) + self._gy * np.cos(q1))
        torque[..., 0] = g1 + g2
        torque[..., 1] = g2
        return torque

    def potential_energy(self, q: ArrayLike) -> FloatArray:
        """Gravitational potential energy ``V(q) = -Σ mᵢ g·p_cᵢ`` (J), ``(...)``."""
        q = _joints(q, 2)
        q1 = q[..., 0]
        q12 = q1 + q[..., 1]
        return -self._k1 * (
            self._gx * np.cos(q1) + self._gy * np.sin(q1)
        ) - self._k2 * (self._gx * np.cos(q12) + self._gy * np.sin(q12))
