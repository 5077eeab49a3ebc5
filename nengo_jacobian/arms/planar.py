"""Planar n-link arm: dynamics assembled from link Jacobians and Christoffel symbols.

Follows the Euler–Lagrange construction of Spong, Hutchinson & Vidyasagar, *Robot
Modeling and Control* (2006), ch. 7: ``M = Σᵢ mᵢ Jvᵢᵀ Jvᵢ + Iᵢ Jωᵢᵀ Jωᵢ`` over the
links' centre-of-mass Jacobians, ``C_kj = Σᵢ c_ijk q̇ᵢ`` with the Christoffel symbols
``c_ijk = ½ (∂M_kj/∂qᵢ + ∂M_ki/∂q_j − ∂M_ij/∂q_k)``, and ``g = ∂V/∂q``.

For a planar chain these sums collapse to constant matrices. With absolute link angles
``θ_a = q₁ + … + q_a`` and ``W[i, a]`` the lever arm of link ``a`` in the position of
link ``i``'s centre of mass (``l_a`` for ``a < i``, ``lc_i`` for ``a = i``),

    M = T (G ∘ cos(θ_a − θ_b)) Tᵀ + T diag(I) Tᵀ,    G = Wᵀ diag(m) W,

where ``T[j, a] = 1`` for ``a ≥ j`` (joint ``j`` moves every link from ``j`` outwards).
Differentiating ``cos(θ_a − θ_b)`` gives ``∂M/∂q`` in closed form, so no finite
differences are needed for ``C``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from nengo_jacobian.arms._base import Arm, _joints
from nengo_jacobian.arms._linalg import FloatArray


class PlanarArm(Arm):
    """Planar arm with any number of revolute joints.

    Parameters
    ----------
    lengths : array_like, shape (n_joints,)
        Link lengths in metres.
    masses : array_like, shape (n_joints,)
        Link masses in kilograms.
    izz : array_like, shape (n_joints,)
        Moments of inertia about each link's centre of mass, in kg·m².
    com : array_like, shape (n_joints,), optional
        Joint-to-centre-of-mass distances. Default: half the link lengths.
    gravity_vector : array_like, shape (2,), optional
        Gravitational acceleration in the arm's plane (m/s²). Default: zero.

    See Also
    --------
    TwoLinkArm : closed-form equations for two links (and the REACH defaults).

    Examples
    --------
    A three-link arm; its Jacobian is ``2 × 3``, so the arm is redundant for reaching:

    >>> import numpy as np
    >>> from nengo_jacobian.arms import PlanarArm
    >>> arm = PlanarArm(lengths=(2.0, 1.2, 0.7), masses=(1.98, 1.32, 0.8),
    ...                 izz=(0.66, 0.16, 0.03))
    >>> q = np.array([0.5, 1.0, 0.3])
    >>> arm.jacobian(q).shape, arm.mass_matrix(q).shape
    ((2, 3), (3, 3))
    >>> bool(np.allclose(arm.mass_matrix(q), arm.mass_matrix(q).T))
    True
    """

    def __init__(
        self,
        lengths: ArrayLike,
        masses: ArrayLike,
        izz: ArrayLike,
        com: ArrayLike | None = None,
        gravity_vector: ArrayLike | None = None,
    ) -> None:
        super().__init__(lengths, masses, izz, com, gravity_vector)
        n = self.n_joints
        # T[j, a] = 1 where joint j moves link a (a >= j)
        self._t = np.triu(np.ones((n, n)))
        self._tt = self._t.T.copy()
        lever = np.tril(np.broadcast_to(self.lengths, (n, n)), k=-1)
        lever[np.arange(n), np.arange(n)] = self.com
        self._g = lever.T @ (self.masses[:, None] * lever)
        self._mass_rot = self._t @ (self.izz[:, None] * self._tt)
        # first moment of mass carried along each link's direction (for gravity)
        self._mu = self.masses @ lever
        # ∂(θ_a - θ_b)/∂q_l = T[l, a] - T[l, b]
        self._dangle = self._t[:, :, None] - self._t[:, None, :]
        self._gx, self._gy = (float(v) for v in self.gravity_vector)

    def _trig(self, q: FloatArray) -> tuple[FloatArray, FloatArray]:
        theta = np.cumsum(q, axis=-1)
        return np.cos(theta), np.sin(theta)

    def _suffix(self, v: FloatArray) -> FloatArray:
        """``out[..., j] = Σ_{a ≥ j} v[..., a]``."""
        return v @ self._tt

    def fk(self, q: ArrayLike) -> FloatArray:
        """Hand position ``Σ_a l_a (cos θ_a, sin θ_a)``.

        Parameters
        ----------
        q : array_like, shape (..., n_joints)
            Joint angles in radians.

        Returns
        -------
        x : ndarray, shape (..., 2)
            Hand position in metres.
        """
        cos, sin = self._trig(_joints(q, self.n_joints))
        return np.stack([cos @ self.lengths, sin @ self.lengths], axis=-1)

    def jacobian(self, q: ArrayLike) -> FloatArray:
        """Hand Jacobian ``∂x/∂q``.

        Parameters
        ----------
        q : array_like, shape (..., n_joints)
            Joint angles in radians.

        Returns
        -------
        J : ndarray, shape (..., 2, n_joints)
            ``J[..., i, j] = ∂x_i/∂q_j`` in metres per radian.
        """
        cos, sin = self._trig(_joints(q, self.n_joints))
        return np.stack(
            [-self._suffix(self.lengths * sin), self._suffix(self.lengths * cos)],
            axis=-2,
        )

    def jacobian_dot(self, q: ArrayLike, dq: ArrayLike) -> FloatArray:
        """Time derivative ``J̇ = Σ_k ∂J/∂q_k q̇_k`` of the hand Jacobian.

        Parameters
        ----------
        q, dq : array_like, shape (..., n_joints)
            Joint angles (rad) and velocities (rad/s).

        Returns
        -------
        dJ : ndarray, shape (..., 2, n_joints)
            ``J̇``, so that the hand acceleration is ``J q̈ + J̇ q̇``.
        """
        cos, sin = self._trig(_joints(q, self.n_joints))
        omega = self.lengths * np.cumsum(_joints(dq, self.n_joints, "dq"), axis=-1)
        return np.stack(
            [-self._suffix(omega * cos), -self._suffix(omega * sin)], axis=-2
        )

    def mass_matrix(self, q: ArrayLike) -> FloatArray:
        """Joint-space inertia matrix ``M(q)``, symmetric positive definite.

        Parameters
        ----------
        q : array_like, shape (..., n_joints)
            Joint angles in radians.

        Returns
        -------
        M : ndarray, shape (..., n_joints, n_joints)
            Inertia in kg·m².
        """
        cos, sin = self._trig(_joints(q, self.n_joints))
        cos_diff = (
            cos[..., :, None] * cos[..., None, :]
            + sin[..., :, None] * sin[..., None, :]
        )
        mass = self._t @ (self._g * cos_diff) @ self._tt
        # the triple product is symmetric only up to rounding; make it exact
        return 0.5 * (mass + np.swapaxes(mass, -1, -2)) + self._mass_rot

    def mass_matrix_partials(self, q: ArrayLike) -> FloatArray:
        """Partial derivatives of the inertia matrix, ``∂M/∂q_l``, in closed form.

        Parameters
        ----------
        q : array_like, shape (..., n_joints)
            Joint angles in radians.

        Returns
        -------
        dM : ndarray, shape (..., n_joints, n_joints, n_joints)
            ``dM[..., l, j, k] = ∂M_jk/∂q_l``.
        """
        cos, sin = self._trig(_joints(q, self.n_joints))
        sin_diff = (
            sin[..., :, None] * cos[..., None, :]
            - cos[..., :, None] * sin[..., None, :]
        )
        # ∂cos(θ_a - θ_b)/∂q_l = -sin(θ_a - θ_b) (T[l, a] - T[l, b])
        inner = -(self._g * sin_diff)[..., None, :, :] * self._dangle
        return self._t @ inner @ self._tt

    def coriolis(self, q: ArrayLike, dq: ArrayLike) -> FloatArray:
        """Coriolis and centrifugal matrix ``C(q, q̇)`` from Christoffel symbols.

        ``C q̇`` is the velocity-dependent torque, and ``Ṁ − 2C`` is skew-symmetric.

        Parameters
        ----------
        q, dq : array_like, shape (..., n_joints)
            Joint angles (rad) and velocities (rad/s).

        Returns
        -------
        C : ndarray, shape (..., n_joints, n_joints)
            In kg·m²/s.
        """
        dq = _joints(dq, self.n_joints, "dq")
        dmass = self.mass_matrix_partials(q)
        # C_kj = ½ Σ_i (∂M_kj/∂q_i + ∂M_ki/∂q_j - ∂M_ij/∂q_k) q̇_i
        return 0.5 * (
            np.einsum("...ikj,...i->...kj", dmass, dq)
            + np.einsum("...jki,...i->...kj", dmass, dq)
            - np.einsum("...kij,...i->...kj", dmass, dq)
        )

    def gravity(self, q: ArrayLike) -> FloatArray:
        """Gravity torques ``g(q) = ∂V/∂q`` (zero in a horizontal plane).

        Parameters
        ----------
        q : array_like, shape (..., n_joints)
            Joint angles in radians.

        Returns
        -------
        g : ndarray, shape (..., n_joints)
            Torques in N·m that the motors must supply to hold the arm still.
        """
        q = _joints(q, self.n_joints)
        if self._gx == 0 and self._gy == 0:
            return np.zeros(q.shape)
        cos, sin = self._trig(q)
        return -self._suffix(self._mu * (-self._gx * sin + self._gy * cos))

    def potential_energy(self, q: ArrayLike) -> FloatArray:
        """Gravitational potential energy ``V(q) = -Σ mᵢ g·p_cᵢ`` (J), ``(...)``."""
        cos, sin = self._trig(_joints(q, self.n_joints))
        return -((self._gx * cos + self._gy * sin) @ self._mu)
