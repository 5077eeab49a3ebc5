"""Ready-made Jacobian losses for custom learning loops.

Each takes the `~nengo_jacobian.training.Run` that a loss function receives and returns
a scalar tensor, differentiable w.r.t. the simulator's weights. The Jacobian they
penalise is the *time-tied* one at one output step: J = ∂ of[output_step] / ∂ wrt, with
the same change applied to ``wrt`` at every step (the sum over input steps), a
``(probe dims, wrt dims)`` matrix per item, e.g. the steady-state gain from a hidden
layer to the output. The losses are the mean over items of ‖A‖²_F with A = J − I
(`identity_penalty`) or A = J (`frobenius_penalty`, Jacobian regularization).

Estimators (``n_projections=None`` is exact: one backward lane per output dimension):

``estimator="projection"``
    Hoffman, Roberts & Yaida (2019, arXiv:1908.02729): ``C ‖vᵀA‖²`` for ``v`` uniform
    on the unit sphere of the output space (dimension ``C``) is unbiased for ‖A‖²_F;
    one backward lane per projection.
``estimator="hutchinson"``
    ``‖A z‖²`` for Rademacher ``z`` (±1 entries) in the ``wrt`` space is unbiased for
    ‖A‖²_F (``E[z zᵀ] = I``). ``A z`` is a Jacobian-vector product; TensorFlow's
    ``ForwardAccumulator`` cannot pass NengoDL's TensorArray-based loop, so it is
    computed exactly by transposing a vector-Jacobian product (double backward).

Both average ``n_projections`` independent draws, so their variance falls as
1/``n_projections``.
"""

from __future__ import annotations

import tensorflow as tf

from nengo_jacobian.exceptions import JacobianError
from nengo_jacobian.request import resolve_targets

ESTIMATORS = ("projection", "hutchinson")


def _tied_vjp(run, of, wrt, vectors, output_step):
    """``vᵀ J_tied`` for ``vectors`` of shape ``(n_items, K, probe dims)``."""
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
        vectors[:, :, None, :], [[0, 0], [0, 0], [step, steps - step - 1], [0, 0]]
    )
    return tf.reduce_sum(run.vjp(of, wrt, cot), axis=2)  # sum over input steps


def _tied_jvp(run, of, wrt, tangents, output_step, out_dims):
    """``J_tied z`` for ``tangents`` of shape ``(n_items, K, wrt dims)``.

    ``vᵀ J z`` is linear in ``v``; its gradient w.r.t. ``v`` is ``J z``.
    """
    dtype = run.sim.tensor_graph.dtype
    v = tf.zeros((run.n_items, tangents.shape[1], out_dims), dtype)
    with tf.GradientTape() as tape:
        tape.watch(v)
        scalar = tf.reduce_sum(_tied_vjp(run, of, wrt, v, output_step) * tangents)
    return tape.gradient(scalar, v)


def _squared_norm(
    run, of, wrt, minus_identity, output_step, n_projections, estimator, generator
) -> tf.Tensor:
    """Per-item estimate of ‖A‖²_F, A = J (or J − I)."""
    dtype = run.sim.tensor_graph.dtype
    out_dims = int(run[of].shape[-1])
    if n_projections is None or estimator == "projection":
        if n_projections is None:
            vectors = tf.tile(tf.eye(out_dims, dtype=dtype)[None], (run.n_items, 1, 1))
            scale = 1.0  # the basis: the sum over it is the exact norm
        else:
            generator = generator or tf.random.get_global_generator()
            vectors = generator.normal(
                (run.n_items, int(n_projections), out_dims), dtype=dtype
            )
            vectors /= tf.norm(vectors, axis=-1, keepdims=True)
            scale = out_dims / int(n_projections)
        rows = _tied_vjp(run, of, wrt, vectors, output_step)  # vᵀ J
        _check_square(minus_identity, rows.shape[-1], out_dims)
        if minus_identity:
            rows -= vectors
        return scale * tf.reduce_sum(tf.square(rows), axis=[1, 2])
    if estimator != "hutchinson":
        raise JacobianError(
            f"Unknown estimator {estimator!r}; use one of {ESTIMATORS}."
        )
    (target,), _ = resolve_targets(run.sim, wrt)
    in_dims = target.node.size_out if target.node is not None else target.signal.size
    _check_square(minus_identity, in_dims, out_dims)
    generator = generator or tf.random.get_global_generator()
    signs = generator.uniform(
        (run.n_items, int(n_projections), in_dims), 0, 2, tf.int32
    )
    z = tf.cast(2 * signs - 1, dtype)
    columns = _tied_jvp(run, of, wrt, z, output_step, out_dims)  # J z
    if minus_identity:
        columns -= z
    return tf.reduce_sum(tf.square(columns), axis=[1, 2]) / int(n_projections)


def _check_square(minus_identity, in_dims, out_dims):
    if minus_identity and in_dims != out_dims:
        raise JacobianError(
            f"identity_penalty needs a square Jacobian: the probe has {out_dims} dims "
            f"but `wrt` has {in_dims}."
        )


def identity_penalty(
    run,
    of,
    wrt,
    *,
    output_step: int = -1,
    n_projections: int | None = None,
    estimator: str = "projection",
    generator: tf.random.Generator | None = None,
) -> tf.Tensor:
    """Mean over items of ‖J − I‖²_F, J the time-tied Jacobian (see module docs).

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
        Estimate with this many random projections instead of exactly.
    estimator : {"projection", "hutchinson"}
        Which unbiased estimator, when ``n_projections`` is given.
    generator : tf.random.Generator, optional
        Random source (default: TensorFlow's global generator).

    Returns
    -------
    tf.Tensor
        Scalar.

    Examples
    --------
    >>> import nengo, numpy as np, nengo_jacobian
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node(np.zeros(2), label="stim")
    ...     relu = nengo.RectifiedLinear()
    ...     ens = nengo.Ensemble(10, 2, neuron_type=relu, label="ens")
    ...     conn = nengo.Connection(ens, ens, synapse=0.01, label="rec")
    ...     _ = nengo.Connection(stim, ens, synapse=None)
    ...     out = nengo.Probe(ens, synapse=None, label="out")

    >>> from nengo_jacobian import Hidden, losses
    >>> x = np.full((1, 4, 2), 0.5)

    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     exact, _ = sim.gradients(
    ...         lambda run: losses.identity_penalty(run, out, Hidden(ens)), x, wrt=[]
    ...     )
    ...     tied = sim.jacobian(out, Hidden(ens), x, output_steps=-1, tied=True)[0]
    >>> bool(np.isclose(exact, np.sum((tied - np.eye(2)) ** 2), rtol=1e-5))
    True
    """
    return tf.reduce_mean(
        _squared_norm(
            run, of, wrt, True, output_step, n_projections, estimator, generator
        )
    )


def frobenius_penalty(
    run,
    of,
    wrt,
    *,
    output_step: int = -1,
    n_projections: int | None = None,
    estimator: str = "projection",
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
        Estimate with this many random projections instead of exactly.
    estimator : {"projection", "hutchinson"}
        Which unbiased estimator, when ``n_projections`` is given.
    generator : tf.random.Generator, optional
        Random source (default: TensorFlow's global generator).

    Returns
    -------
    tf.Tensor
        Scalar.

    Examples
    --------
    >>> import nengo, numpy as np, nengo_jacobian
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node(np.zeros(2), label="stim")
    ...     relu = nengo.RectifiedLinear()
    ...     ens = nengo.Ensemble(10, 2, neuron_type=relu, label="ens")
    ...     conn = nengo.Connection(ens, ens, synapse=0.01, label="rec")
    ...     _ = nengo.Connection(stim, ens, synapse=None)
    ...     out = nengo.Probe(ens, synapse=None, label="out")

    >>> from nengo_jacobian import Hidden, losses
    >>> x = np.full((1, 4, 2), 0.5)

    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     estimate, _ = sim.gradients(
    ...         lambda run: losses.frobenius_penalty(
    ...             run, out, stim, n_projections=2, estimator="hutchinson"
    ...         ),
    ...         x,
    ...         wrt=[],
    ...     )
    >>> estimate >= 0
    True
    """
    return tf.reduce_mean(
        _squared_norm(
            run, of, wrt, False, output_step, n_projections, estimator, generator
        )
    )


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

    Examples
    --------
    >>> import nengo, numpy as np, nengo_jacobian
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node(np.zeros(2), label="stim")
    ...     relu = nengo.RectifiedLinear()
    ...     ens = nengo.Ensemble(10, 2, neuron_type=relu, label="ens")
    ...     conn = nengo.Connection(ens, ens, synapse=0.01, label="rec")
    ...     _ = nengo.Connection(stim, ens, synapse=None)
    ...     out = nengo.Probe(ens, synapse=None, label="out")

    >>> from nengo_jacobian import Hidden, losses
    >>> x = np.full((1, 4, 2), 0.5)

    >>> import tensorflow as tf
    >>> def loss_fn(run):
    ...     return tf.reduce_sum(losses.tied_jacobian(run, out, stim))
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     total, _ = sim.gradients(loss_fn, x, wrt=[])
    ...     tied = sim.jacobian(out, stim, x, output_steps=-1, tied=True)
    >>> bool(np.isclose(total, tied.sum(), rtol=1e-5))
    True
    """
    out_dims = int(run[of].shape[-1])
    eye = tf.eye(out_dims, dtype=run.sim.tensor_graph.dtype)
    return _tied_vjp(run, of, wrt, tf.tile(eye[None], (run.n_items, 1, 1)), output_step)
