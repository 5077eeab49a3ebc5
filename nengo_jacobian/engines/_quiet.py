"""Silence TensorFlow's retracing warning for our own per-request functions.

Every distinct request signature gets its own ``tf.function`` (cached, traced once).
TensorFlow counts traces per Python function, not per ``tf.function`` object, and so
warns about "retracing" after a few different requests although nothing is retraced.
"""

import logging

_OURS = (
    "LanePlan.pullback",
    "LanePlan.pushforward",
    "_row_gradient.<locals>.row_gradient",
    "_step_function.<locals>.step",
    "_program.<locals>.program",
    "_program.<locals>.jacobians",
    # TensorFlow's own, called by every TapeJacobian function
    "pfor.<locals>.f",
)


class _RetracingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            "triggered tf.function retracing" in message
            and any(name in message for name in _OURS)
        )


def install() -> None:
    """Add the filter to TensorFlow's logger (idempotent)."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _RetracingFilter) for f in logger.filters):
        logger.addFilter(_RetracingFilter())
