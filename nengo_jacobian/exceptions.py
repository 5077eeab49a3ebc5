"""Errors raised by nengo_jacobian.

Every error names the offending Nengo object, the rule it broke and the way out, in the
style of `nengo.exceptions.ValidationError`.
"""

from nengo.exceptions import NengoException


class JacobianError(NengoException, ValueError):
    """Base class of all nengo_jacobian errors.

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
    >>> with nengo.Network():
    ...     stray = nengo.Probe(nengo.Node([0.0]), label="stray")
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     try:
    ...         sim.jacobian(stray, stim, n_steps=2)
    ...     except nengo_jacobian.JacobianError as error:
    ...         print(type(error).__name__, "-", str(error).split(";")[0])
    UnknownObjectError - Probe stray is not a probe of this simulator's network
    """


class UnknownObjectError(JacobianError, KeyError):
    """A probe, Node, weight or name that is not part of this simulator's network.

    Catch it, or any error of this package, as `JacobianError`.

    Examples
    --------
    >>> import nengo_jacobian
    >>> issubclass(nengo_jacobian.UnknownObjectError, nengo_jacobian.JacobianError)
    True
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NoWeightsError(JacobianError):
    """A weight was asked for on an object that has none.

    Catch it, or any error of this package, as `JacobianError`.

    Examples
    --------
    >>> import nengo_jacobian
    >>> issubclass(nengo_jacobian.NoWeightsError, nengo_jacobian.JacobianError)
    True
    """


class NotDifferentiableError(JacobianError):
    """Something on the differentiated path has no gradient (a Python Node, say).

    Catch it, or any error of this package, as `JacobianError`.

    Examples
    --------
    >>> import nengo_jacobian
    >>> issubclass(nengo_jacobian.NotDifferentiableError, nengo_jacobian.JacobianError)
    True
    """


class DataError(JacobianError):
    """Input data of the wrong shape, minibatch size or type.

    Catch it, or any error of this package, as `JacobianError`.

    Examples
    --------
    >>> import nengo_jacobian
    >>> issubclass(nengo_jacobian.DataError, nengo_jacobian.JacobianError)
    True
    """


class InferenceModeError(JacobianError):
    """Spiking neurons in a network that NengoDL would run in inference mode.

    Catch it, or any error of this package, as `JacobianError`.

    Examples
    --------
    >>> import nengo_jacobian
    >>> issubclass(nengo_jacobian.InferenceModeError, nengo_jacobian.JacobianError)
    True
    """


class NonFiniteJacobianError(JacobianError, ArithmeticError):
    """A Jacobian holds NaN or infinite entries.

    Catch it, or any error of this package, as `JacobianError`.

    Examples
    --------
    >>> import nengo_jacobian
    >>> issubclass(nengo_jacobian.NonFiniteJacobianError, nengo_jacobian.JacobianError)
    True
    """


class WeightFileError(JacobianError):
    """A saved weight file does not match this network.

    Catch it, or any error of this package, as `JacobianError`.

    Examples
    --------
    >>> import nengo_jacobian
    >>> issubclass(nengo_jacobian.WeightFileError, nengo_jacobian.JacobianError)
    True
    """
