"""Small batched linear algebra with closed forms for 2×2 blocks.

`numpy.linalg` costs tens of microseconds per call on a 2×2 matrix, which dominates a
16 000-step closed loop; the closed forms below cost a few.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def transpose(a: FloatArray) -> FloatArray:
    """Swap the last two axes of ``a`` (batched matrix transpose)."""
    return np.swapaxes(a, -1, -2)


def inv2(a: FloatArray) -> FloatArray:
    """Inverse of ``(..., 2, 2)`` matrices by the adjugate formula."""
    inv_det = 1.0 / (a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0])
    out = np.empty(a.shape)
    out[..., 0, 0] = a[..., 1, 1] * inv_det
    out[..., 0, 1] = -a[..., 0, 1] * inv_det
    out[..., 1, 0] = -a[..., 1, 0] * inv_det
    out[..., 1, 1] = a[..., 0, 0] * inv_det
    return out


def solve(a: FloatArray, b: FloatArray) -> FloatArray:
    """Solve ``a @ x = b`` for ``a`` ``(..., n, n)`` and ``b`` ``(..., n, k)``."""
    if a.shape[-1] == 2:
        return inv2(a) @ b
    return np.linalg.solve(a, b)


def solve_vec(a: FloatArray, b: FloatArray) -> FloatArray:
    """Solve ``a @ x = b`` for vectors ``b`` of shape ``(..., n)``."""
    # an explicit trailing axis keeps batched solves unambiguous across numpy versions
    return solve(a, b[..., None])[..., 0]


def pinv_sym(a: FloatArray, rcond: float) -> FloatArray:
    """Pseudo-inverse of symmetric PSD ``a``; eigenvalues < ``rcond·λmax`` are cut."""
    a = 0.5 * (a + transpose(a))
    w, v = np.linalg.eigh(a)
    keep = w > rcond * w[..., -1:]
    w_inv = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
    return (v * w_inv[..., None, :]) @ transpose(v)


def inv_sym_psd(a: FloatArray, rcond: float) -> FloatArray:
    """Inverse of symmetric PSD ``a``, or a truncated pseudo-inverse if ill-conditioned.

    The test is scale-free (smallest over largest eigenvalue against ``rcond``), so it
    does not depend on the arm's units the way an absolute determinant threshold does.
    """
    if a.shape[-1] == 2:
        p = a[..., 0, 0]
        r = 0.5 * (a[..., 0, 1] + a[..., 1, 0])
        s = a[..., 1, 1]
        half_trace = 0.5 * (p + s)
        radius = np.hypot(0.5 * (p - s), r)
        if (half_trace - radius > rcond * (half_trace + radius)).all():
            inv_det = 1.0 / (p * s - r * r)
            out = np.empty(a.shape)
            out[..., 0, 0] = s * inv_det
            out[..., 0, 1] = out[..., 1, 0] = -r * inv_det
            out[..., 1, 1] = p * inv_det
            return out
    return pinv_sym(a, rcond)
