"""Ready-made Jacobian losses for custom learning loops.

Each takes the `~nengo_jacobian.training.Run` that a loss function receives and returns
a scalar tensor, differentiable w.r.t. the simulator's weights. The Jacobian they
penalise is the *time-tied* one at one output step: ∂ of[output_step] / ∂ wrt, with the
same change applied to ``wrt`` at every step (the sum over input steps), a
``(probe dims, wrt dims)`` matrix per item, e.g. the steady-state gain from a hidden
layer to the output.

``n_projections=None`` computes it exactly (one backward lane per output dimension).
``n_projections=K`` uses the unbiased random-projection estimator of Hoffman, Roberts &
Yaida (2019, arXiv:1908.02729): for ``v`` uniform on the unit sphere of the output
space (dimension ``C``), ``E[C ‖vᵀA‖²] = ‖A‖²_F``, averaged over ``K`` projections
(``K`` backward lanes per item, whatever ``C``).
"""

from __future__ import annotations

import tensorflow as tf

from nengo_jacobian.exceptions import JacobianError
from nengo_jacobian.request import resolve_targets


def _tied_vjp(run, of, wrt, vectors, output_step):
    """``vᵀ J_tied`` for ``vectors`` of shape ``(n_items, K, dims)``."""
    (target,), _ = resolve_targets(run.sim, wrt)
    if target.entry is not None:
        raise JacobianError(
            f"Jacobian penalties take an input Node or a Hidden signal as `wrt` (a "
            f"per-step quantity that can be held constant over time), not a weight "
            f"({target.name})."
        )
    steps = int(run[of].shape[1])
    step = output_step % steps
    cot = tf.pad(
        vectors[:, :, None, :],
        [[0, 0], [0, 0], [step, steps - step - 1], [0, 0]],
    )
    products = run.vjp(of, wrt, cot)  # (n_items, K, n_steps, wrt dims)
    return tf.reduce_sum(products, axis=2)


def _vectors(run, dims, n_projections, generator):
    dtype = run.sim.tensor_graph.dtype
    if n_projections is None:
        eye = tf.eye(dims, dtype=dtype)
        return tf.tile(eye[None], (run.n_items, 1, 1))
    generator = generator or tf.random.get_global_generator()
    v = generator.normal((run.n_items, int(n_projections), dims), dtype=dtype)
    return v / tf.norm(v, axis=-1, keepdims=True)


def identity_penalty(
    run,
    of,
    wrt,
    *,
    output_step: int = -1,
    n_projections: int | None = None,
    generator: tf.random.Generator | None = None,
) -> tf.Tensor:
    """Mean over items of ‖J − I‖²_F, J the time-tied Jacobian of ``of`` w.r.t. ``wrt``.

    Parameters
    ----------
    run : nengo_jacobian.training.Run
        What the loss function receives.
    of : nengo.Probe
        The output (its dimension must equal that of ``wrt``).
    wrt : input Node or nengo_jacobian.Hidden
        The input or hidden signal.
    output_step : int
        Which output step (default: the last).
    n_projections : int, optional
        Use the unbiased random-projection estimator with this many projections.
    generator : tf.random.Generator, optional
        Random source for the projections (default: TensorFlow's global generator).

    Returns
    -------
    tf.Tensor
        Scalar.
    """
    dims = int(run[of].shape[-1])
    vectors = _vectors(run, dims, n_projections, generator)
    products = _tied_vjp(run, of, wrt, vectors, output_step)
    if products.shape[-1] != dims:
        raise JacobianError(
            f"identity_penalty needs a square Jacobian: the probe has {dims} dims but "
            f"`wrt` has {products.shape[-1]}."
        )
    # exact: the K = dims basis vectors, so dims * mean over them is the sum
    per_item = dims * tf.reduce_mean(
        tf.reduce_sum(tf.square(products - vectors), axis=-1), axis=1
    )
    return tf.reduce_mean(per_item)


def frobenius_penalty(
    run,
    of,
    wrt,
    *,
    output_step: int = -1,
    n_projections: int | None = None,
    generator: tf.random.Generator | None = None,
) -> tf.Tensor:
    """Mean over items of ‖J‖²_F (Jacobian regularization); see `identity_penalty`.

    Parameters
    ----------
    run : nengo_jacobian.training.Run
        What the loss function receives.
    of : nengo.Probe
        The output.
    wrt : input Node or nengo_jacobian.Hidden
        The input or hidden signal.
    output_step : int
        Which output step (default: the last).
    n_projections : int, optional
        Use the unbiased random-projection estimator with this many projections.
    generator : tf.random.Generator, optional
        Random source for the projections.

    Returns
    -------
    tf.Tensor
        Scalar.
    """
    dims = int(run[of].shape[-1])
    vectors = _vectors(run, dims, n_projections, generator)
    products = _tied_vjp(run, of, wrt, vectors, output_step)
    # exact: the K = dims basis vectors, so dims * mean over them is the sum
    per_item = dims * tf.reduce_mean(
        tf.reduce_sum(tf.square(products), axis=-1), axis=1
    )
    return tf.reduce_mean(per_item)


def tied_jacobian(run, of, wrt, *, output_step: int = -1) -> tf.Tensor:
    """``(n_items, probe dims, wrt dims)``: the time-tied Jacobian at one output step.

    Parameters
    ----------
    run : nengo_jacobian.training.Run
        What the loss function receives.
    of : nengo.Probe
        The output.
    wrt : input Node or nengo_jacobian.Hidden
        The input or hidden signal.
    output_step : int
        Which output step (default: the last).

    Returns
    -------
    tf.Tensor
    """
    dims = int(run[of].shape[-1])
    vectors = _vectors(run, dims, None, None)
    return _tied_vjp(run, of, wrt, vectors, output_step)
