"""What every planar arm shares: parameters, forward dynamics and energy."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from nengo_jacobian.arms._linalg import FloatArray, solve_vec


def _vector(value: ArrayLike, name: str, n: int | None = None) -> FloatArray:
    array = np.array(value, dtype=np.float64)
    if array.ndim != 1 or (n is not None and array.shape[0] != n):
        want = "a 1-D sequence" if n is None else f"{n} values (one per link)"
        raise ValueError(f"`{name}` must be {want}; got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be finite; got {array.tolist()}.")
    array.setflags(write=False)
    return array


def _joints(value: ArrayLike, n: int, name: str = "q") -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] != n:
        raise ValueError(
            f"`{name}` must have {n} joint values on its last axis, shape (..., {n}); "
            f"got shape {array.shape}."
        )
    return array


class Arm:
    """Base class of the planar revolute arms in `nengo_jacobian.arms`.

    Link ``i`` is a rigid body of mass ``masses[i]`` and moment of inertia ``izz[i]``
    about its centre of mass, which sits ``com[i]`` metres along the link from joint
    ``i``. Joint angles are relative (``q[i]`` is link ``i``'s angle to link
    ``i - 1``); the base is at the origin and ``q = 0`` points every link along +x.
    Every method takes joint arrays with any number of leading batch axes.

    Subclasses provide the kinematics and `mass_matrix`, `coriolis`, `gravity` and
    `potential_energy`; this class turns them into `forward_dynamics` and `energy`.

    Parameters
    ----------
    lengths : array_like, shape (n_joints,)
        Link lengths in metres.
    masses : array_like, shape (n_joints,)
        Link masses in kilograms.
    izz : array_like, shape (n_joints,)
        Moments of inertia about each link's centre of mass, in kg·m².
    com : array_like, shape (n_joints,), optional
        Distance from joint ``i`` to link ``i``'s centre of mass. Default: half of each
        link's length.
    gravity_vector : array_like, shape (2,), optional
        Gravitational acceleration in the arm's plane, in m/s², e.g. ``(0, -9.81)`` for
        a vertical plane. Default: zero (a horizontal plane, as in the REACH task).
    """

    #: Dimension of the task space (the hand's planar position).
    task_dims: int = 2

    def __init__(
        self,
        lengths: ArrayLike,
        masses: ArrayLike,
        izz: ArrayLike,
        com: ArrayLike | None = None,
        gravity_vector: ArrayLike | None = None,
    ) -> None:
        self.lengths = _vector(lengths, "lengths")
        n = self.lengths.shape[0]
        if n == 0 or np.any(self.lengths <= 0):
            raise ValueError(
                f"`lengths` must hold at least one positive link length; got "
                f"{self.lengths.tolist()}."
            )
        self.masses = _vector(masses, "masses", n)
        self.izz = _vector(izz, "izz", n)
        if np.any(self.masses <= 0) or np.any(self.izz < 0):
            raise ValueError(
                f"Link masses must be positive and inertias non-negative; got masses "
                f"{self.masses.tolist()} and izz {self.izz.tolist()}."
            )
        self.com = _vector(0.5 * self.lengths if com is None else com, "com", n)
        self.gravity_vector = _vector(
            (0.0, 0.0) if gravity_vector is None else gravity_vector,
            "gravity_vector",
            2,
        )

    @property
    def n_joints(self) -> int:
        """Number of revolute joints (and links)."""
        return self.lengths.shape[0]

    def __repr__(self) -> str:
        gravity = self.gravity_vector.tolist()
        extra = "" if not any(gravity) else f", gravity_vector={tuple(gravity)}"
        return (
            f"{type(self).__name__}(lengths={tuple(self.lengths.tolist())}, "
            f"masses={tuple(self.masses.tolist())}, izz={tuple(self.izz.tolist())}, "
            f"com={tuple(self.com.tolist())}{extra})"
        )

    def fk(self, q: ArrayLike) -> FloatArray:
        """Hand position, shape ``(..., 2)``."""
        raise NotImplementedError

    def jacobian(self, q: ArrayLike) -> FloatArray:
        """Hand Jacobian ``∂fk/∂q``, shape ``(..., 2, n_joints)``."""
        raise NotImplementedError

    def jacobian_dot(self, q: ArrayLike, dq: ArrayLike) -> FloatArray:
        """Time derivative of the hand Jacobian along ``dq``, shape ``(..., 2, n)``."""
        raise NotImplementedError

    def mass_matrix(self, q: ArrayLike) -> FloatArray:
        """Joint-space inertia matrix ``M(q)``, shape ``(..., n, n)``."""
        raise NotImplementedError

    def coriolis(self, q: ArrayLike, dq: ArrayLike) -> FloatArray:
        """Coriolis/centrifugal matrix ``C(q, q̇)``, shape ``(..., n, n)``."""
        raise NotImplementedError

    def gravity(self, q: ArrayLike) -> FloatArray:
        """Gravity torques ``g(q) = ∂V/∂q``, shape ``(..., n)``."""
        raise NotImplementedError

    def potential_energy(self, q: ArrayLike) -> FloatArray:
        """Gravitational potential energy ``V(q)``, shape ``(...)``."""
        raise NotImplementedError

    def forward_dynamics(
        self, q: ArrayLike, dq: ArrayLike, tau: ArrayLike
    ) -> FloatArray:
        """Joint accelerations from ``M(q) q̈ + C(q, q̇) q̇ + g(q) = τ``.

        Parameters
        ----------
        q, dq, tau : array_like, shape (..., n_joints)
            Joint angles (rad), velocities (rad/s) and applied torques (N·m).

        Returns
        -------
        ddq : ndarray, shape (..., n_joints)
            Joint accelerations in rad/s².
        """
        q = np.asarray(q, dtype=np.float64)
        dq = np.asarray(dq, dtype=np.float64)
        bias = (self.coriolis(q, dq) @ dq[..., None])[..., 0] + self.gravity(q)
        return solve_vec(self.mass_matrix(q), np.asarray(tau) - bias)

    def kinetic_energy(self, q: ArrayLike, dq: ArrayLike) -> FloatArray:
        """Kinetic energy ``½ q̇ᵀ M(q) q̇`` in joules, shape ``(...)``."""
        dq = np.asarray(dq, dtype=np.float64)
        return 0.5 * np.einsum("...i,...ij,...j->...", dq, self.mass_matrix(q), dq)

    def energy(self, q: ArrayLike, dq: ArrayLike) -> FloatArray:
        """Total mechanical energy, kinetic plus gravitational potential, ``(...)``.

        It is conserved when no torque acts, which makes it a check on the dynamics
        and the integrator.
        """
        return self.kinetic_energy(q, dq) + self.potential_energy(q)
