"""Ways of computing a Jacobian, one per module.

- `VectorizedReverse` (default): one backward pass covers many Jacobian rows, one row
  per minibatch lane of a lane graph (see `nengo_jacobian.lanes`).
- `ReferenceLoop`: one backward pass per output row on the user's own Keras model, the
  way users write it by hand. Slow; kept as the independent reference.
"""

from nengo_jacobian.engines import _quiet
from nengo_jacobian.engines.base import Engine
from nengo_jacobian.engines.loop import ReferenceLoop
from nengo_jacobian.engines.reverse import VectorizedReverse

_quiet.install()

__all__ = ["Engine", "ReferenceLoop", "VectorizedReverse"]
