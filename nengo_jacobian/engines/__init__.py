"""Ways of computing a Jacobian, one per module.

- `VectorizedReverse` (default): one backward pass covers many Jacobian rows, one row
  per minibatch lane of a lane graph (see `nengo_jacobian.lanes`).
- `ReferenceLoop`: one backward pass per output row on the user's own Keras model, the
  way users write it by hand. Slow; kept as the independent reference.
- `ForwardMode`: one lane per input column (Jacobian-vector products), for few inputs
  (e.g. time-tied) and many outputs.
- `FiniteDifference`: batched central differences w.r.t. inputs and hidden signals,
  all perturbations as lanes of one forward pass.
- `TapeJacobian`: TensorFlow's ``tape.jacobian`` with pfor on the user's Keras model,
  for simulators unrolled to the request's steps (``use_loop=False``).
"""

from nengo_jacobian.engines import _quiet
from nengo_jacobian.engines.base import Engine
from nengo_jacobian.engines.finite_difference import FiniteDifference
from nengo_jacobian.engines.forward import ForwardMode
from nengo_jacobian.engines.loop import ReferenceLoop
from nengo_jacobian.engines.pfor import TapeJacobian
from nengo_jacobian.engines.reverse import VectorizedReverse

_quiet.install()

__all__ = [
    "Engine",
    "FiniteDifference",
    "ForwardMode",
    "ReferenceLoop",
    "TapeJacobian",
    "VectorizedReverse",
]
