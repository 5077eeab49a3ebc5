"""nengo_jacobian: exact, labelled Jacobians of NengoDL networks.

The public API is what this module exports; everything else is implementation.
"""

# ruff: noqa: E402
# First, before anything below imports NengoDL or TensorFlow: NengoDL 3.6.0 imports
# Keras 2 internals that TensorFlow >= 2.13 moved (a no-op on TensorFlow 2.12).
from nengo_jacobian import _compat

_compat.install()

from nengo_jacobian import engines, losses, progress
from nengo_jacobian.exceptions import (
    DataError,
    InferenceModeError,
    JacobianError,
    NonFiniteJacobianError,
    NotDifferentiableError,
    NoWeightsError,
    UnknownObjectError,
    WeightFileError,
)
from nengo_jacobian.labels import WeightEntry, WeightTable
from nengo_jacobian.nodes import differentiable_node
from nengo_jacobian.request import Hidden
from nengo_jacobian.results import JacobianBlock, JacobianResult
from nengo_jacobian.simulator import Simulator
from nengo_jacobian.sweeps import SweepError, sweep
from nengo_jacobian.version import __version__

__all__ = [
    "DataError",
    "Hidden",
    "InferenceModeError",
    "JacobianBlock",
    "JacobianResult",
    "JacobianError",
    "NoWeightsError",
    "NonFiniteJacobianError",
    "NotDifferentiableError",
    "Simulator",
    "SweepError",
    "UnknownObjectError",
    "WeightEntry",
    "WeightFileError",
    "WeightTable",
    "__version__",
    "differentiable_node",
    "engines",
    "losses",
    "progress",
    "sweep",
]
