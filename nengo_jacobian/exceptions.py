"""Errors raised by nengo_jacobian.

Every error names the offending Nengo object, the rule it broke and the way out, in the
style of `nengo.exceptions.ValidationError`.
"""

from nengo.exceptions import NengoException


class JacobianError(NengoException, ValueError):
    """Base class of all nengo_jacobian errors."""


class UnknownObjectError(JacobianError, KeyError):
    """A probe, Node, weight or name that is not part of this simulator's network."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NoWeightsError(JacobianError):
    """A weight was asked for on an object that has none."""


class NotDifferentiableError(JacobianError):
    """Something on the differentiated path has no gradient (a Python Node, say)."""


class DataError(JacobianError):
    """Input data of the wrong shape, minibatch size or type."""


class InferenceModeError(JacobianError):
    """Spiking neurons in a network that NengoDL would run in inference mode."""


class NonFiniteJacobianError(JacobianError, ArithmeticError):
    """A Jacobian holds NaN or infinite entries."""


class WeightFileError(JacobianError):
    """A saved weight file does not match this network."""
