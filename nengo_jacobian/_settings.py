"""NengoDL settings forced during a build, leaving the user's config as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import nengo
from nengo.params import Parameter


@contextlib.contextmanager
def forced_setting(network: nengo.Network | None, name: str, value) -> Iterator[None]:
    """Set a NengoDL setting on ``network`` for the duration of the block.

    NengoDL reads settings such as ``simplifications`` from the top-level network's
    config while it builds the graph. We force them during our build only, and put the
    config back exactly as it was afterwards (including removing a parameter we had to
    add), so the user's network object is left unchanged.
    """
    if network is None:
        yield
        return

    config = network.config
    had_instance_entry = network in config.params
    had_class_entry = nengo.Network in config.params
    if not had_class_entry:
        config.configures(nengo.Network)
    class_params = config[nengo.Network]
    added = name not in class_params.extra_params
    if added:
        class_params.set_param(name, Parameter(name, None, optional=True))
    param = class_params.get_param(name)
    instance_params = config[network]
    # Parameter values per instance live in ``param.data``; remember whether the
    # user had set one so that it can be restored verbatim.
    had_value = instance_params in param.data
    old_value = param.data[instance_params] if had_value else None
    param.data[instance_params] = value
    try:
        yield
    finally:
        if had_value:
            param.data[instance_params] = old_value
        else:
            del param.data[instance_params]
        if added:
            del class_params._extra_params[name]
        if not had_instance_entry:
            del config.params[network]
        if not had_class_entry:
            del config.params[nengo.Network]
