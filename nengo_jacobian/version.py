"""Version of nengo_jacobian."""

__version__ = "0.1.0.dev0"
