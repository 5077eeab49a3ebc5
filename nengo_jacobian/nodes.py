"""Nodes that TensorFlow can differentiate through.

A ``nengo.Node`` with a Python function runs as ``tf.numpy_function``, which has no
gradient: Jacobians through it would silently be ``None`` (``sim.jacobian`` refuses
them). `differentiable_node` builds a ``nengo_dl.TensorNode`` instead, from either a
function written with TensorFlow operations, or a numpy function together with its
Jacobian.
"""

from __future__ import annotations

from collections.abc import Callable

import nengo_dl
import numpy as np
import tensorflow as tf


def differentiable_node(
    function: Callable,
    size_in: int,
    size_out: int,
    *,
    jacobian: Callable | None = None,
    label: str | None = None,
) -> nengo_dl.TensorNode:
    """A Node computing ``function(x)`` whose derivative TensorFlow knows.

    Call it inside a ``nengo.Network`` context, like ``nengo.Node``.

    Parameters
    ----------
    function : callable
        With ``jacobian=None``: a function of a ``(minibatch, size_in)`` tensor written
        with TensorFlow operations, returning ``(minibatch, size_out)``. With a
        ``jacobian``: a numpy function of one ``(size_in,)`` vector returning
        ``(size_out,)``.
    size_in, size_out : int
        Input and output dimensions.
    jacobian : callable, optional
        A numpy function of one ``(size_in,)`` vector returning the
        ``(size_out, size_in)`` Jacobian of ``function`` there. Backward passes use
        it (``tf.custom_gradient``), so Jacobians pass through the Node.
    label : str, optional
        Label of the Node.

    Returns
    -------
    nengo_dl.TensorNode
        Connect to and from it like any Node.

    Examples
    --------
    >>> import nengo, numpy as np
    >>> from nengo_jacobian.nodes import differentiable_node
    >>> with nengo.Network():
    ...     square = differentiable_node(
    ...         lambda x: x**2, 2, 2, jacobian=lambda x: np.diag(2 * x), label="square"
    ...     )
    >>> square.label
    'square'
    """
    if jacobian is None:
        return nengo_dl.TensorNode(
            lambda x: function(x),
            shape_in=(size_in,),
            shape_out=(size_out,),
            pass_time=False,
            label=label,
        )

    def forward(x):
        return np.stack([np.asarray(function(row), dtype=x.dtype) for row in x])

    def jacobians(x):
        return np.stack([np.asarray(jacobian(row), dtype=x.dtype) for row in x])

    @tf.custom_gradient
    def apply(x):
        y = tf.numpy_function(forward, [x], x.dtype)
        y.set_shape((x.shape[0], size_out))

        def vjp(dy):
            jac = tf.numpy_function(jacobians, [x], x.dtype)
            jac.set_shape((x.shape[0], size_out, size_in))
            return tf.einsum("bi,bij->bj", dy, jac)

        return y, vjp

    return nengo_dl.TensorNode(
        apply,
        shape_in=(size_in,),
        shape_out=(size_out,),
        pass_time=False,
        label=label,
    )
