"""Let NengoDL 3.6.0 import on TensorFlow 2.13 and later (issue 7).

NengoDL 3.6.0 (the last release) does, in ``nengo_dl/compat.py``::

    from keras.engine.functional import Functional, _build_map
    from keras.layers import BatchNormalizationV1, BatchNormalizationV2

Those Keras 2 internals moved or disappeared after TensorFlow 2.12:

* TensorFlow <= 2.12: Keras 2 with ``keras.engine``. `install` does nothing.
* TensorFlow 2.13 - 2.15: Keras 2 with the same modules under ``keras.src.engine``.
  `install` aliases them.
* TensorFlow >= 2.16: Keras 3, which has no ``engine`` and cannot run NengoDL. The
  legacy Keras 2 package ``tf_keras`` takes its place behind ``tf.keras`` if
  ``TF_USE_LEGACY_KERAS`` is set before TensorFlow is imported. `install` sets the
  variable when it can and aliases the ``tf_keras.src.engine`` modules.

NengoDL builds everything on ``tf.keras`` Keras 2 layers, so on TensorFlow >= 2.16 it
needs the legacy ``tf_keras`` package behind ``tf.keras``. TensorFlow picks the Keras
behind ``tf.keras`` from ``TF_USE_LEGACY_KERAS`` when it is imported, so `install`
must run before the first ``import tensorflow`` or set the variable itself.

Everything else NengoDL 3.6.0 uses (``tf.keras.backend.learning_phase``,
``tensorflow.python.trackable``, ``layer._self_tracked_trackables``, ``smart_cond``)
still exists up to ``tf_keras`` 2.20 and is left alone.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import types
import warnings
from collections.abc import Iterable

#: The environment variable TensorFlow >= 2.16 reads to route ``tf.keras`` to
#: ``tf_keras``, and the values it accepts as "on" (``tensorflow/__init__.py``).
LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"
_LEGACY_ON = ("true", "True", "1")

#: What `install` put in place, for tests and bug reports: ``{name: object}`` of the
#: ``sys.modules`` entries and ``keras.layers`` attributes added, plus
#: ``"TF_USE_LEGACY_KERAS"`` if `install` set that variable, and a ``"warnings: ..."``
#: entry on Nengo 4 (see `_quiet_nengo_version_warning`). Empty when nothing was
#: needed (TensorFlow <= 2.12 with Nengo 3) or `install` has not run.
installed: dict[str, object] = {}

_done = False


def install() -> None:
    """Make ``import nengo_dl`` work on TensorFlow 2.13 and later.

    Call it before anything imports ``nengo_dl`` (``import nengo_jacobian`` does).
    It is idempotent, and a no-op where ``import keras.engine`` works
    (TensorFlow <= 2.12) and Nengo is 3.x, so on the default stack nothing in
    ``sys.modules``, ``os.environ`` or the warning filters changes. Otherwise it:

    * on Keras 2.13 - 2.15 (TensorFlow 2.13 - 2.15), registers ``keras.engine`` and
      ``keras.engine.functional`` in ``sys.modules`` as aliases of
      ``keras.src.engine`` and ``keras.src.engine.functional``;
    * on Keras 3 (TensorFlow >= 2.16), sets ``TF_USE_LEGACY_KERAS=1`` if TensorFlow
      is not imported yet and the variable is unset, then registers the same two
      names as aliases of ``tf_keras.src.engine`` and its ``functional`` module;
    * in both cases adds ``BatchNormalizationV1`` and ``BatchNormalizationV2`` to the
      ``keras.layers`` module if it lacks them (Keras 2 had them there);
    * on Nengo 4 (any TensorFlow), ignores NengoDL 3.6.0's "not tested with your
      Nengo version" warning: `check_synapses`, run by `nengo_jacobian.Simulator`,
      names the one part of that pair that fails instead.

    Raises
    ------
    ImportError
        On TensorFlow >= 2.16 when ``tf_keras`` is not installed, when
        ``TF_USE_LEGACY_KERAS`` is set to something other than ``1``/``true``, or when
        TensorFlow was imported before ``TF_USE_LEGACY_KERAS=1`` was set (then
        ``tf.keras`` is Keras 3, which NengoDL 3.6.0 cannot build on). The message
        says what to do.

    Examples
    --------
    >>> from nengo_jacobian import _compat
    >>> _compat.install()  # already done by ``import nengo_jacobian``; idempotent
    >>> import keras.engine.functional  # works on every supported TensorFlow
    """
    global _done
    if _done:
        return
    if _linear_filter_d_unsupported():
        _quiet_nengo_version_warning()
    layout = _keras_layout()
    if layout == "engine" or layout is None:
        # TF <= 2.12: NengoDL's own imports work. No Keras at all: let NengoDL raise
        # its own ModuleNotFoundError rather than guess.
        _done = True
        return
    if layout == "src.engine":
        engine_package = "keras.src"
    else:
        _use_legacy_keras()
        engine_package = "tf_keras.src"
    _alias_engine(engine_package)
    _done = True


def _keras_layout() -> str | None:
    """Where the installed ``keras`` keeps its engine, found without importing it.

    Importing ``keras`` would import TensorFlow, after which ``TF_USE_LEGACY_KERAS``
    can no longer be set, so look at the package's folders instead.

    Returns
    -------
    str or None
        ``"engine"`` (Keras <= 2.12), ``"src.engine"`` (Keras 2.13 - 2.15), ``"keras3"``
        (no engine: Keras 3), or None when ``keras`` is not installed.
    """
    module = sys.modules.get("keras")
    if module is not None:
        return _layout_of(getattr(module, "__path__", []))
    spec = importlib.util.find_spec("keras")
    if spec is None:
        return None
    return _layout_of(spec.submodule_search_locations or [])


def _layout_of(locations: Iterable[str]) -> str:
    """`_keras_layout` for the given ``keras`` package folders."""
    locations = list(locations)
    if any(os.path.isdir(os.path.join(loc, "engine")) for loc in locations):
        return "engine"
    if any(os.path.isdir(os.path.join(loc, "src", "engine")) for loc in locations):
        return "src.engine"
    return "keras3"


def _use_legacy_keras() -> None:
    """Put ``tf_keras`` behind ``tf.keras``, or say exactly why that is impossible."""
    value = os.environ.get(LEGACY_KERAS_VARIABLE)
    if value is not None and value not in _LEGACY_ON:
        raise ImportError(
            f"NengoDL 3.6.0 needs Keras 2 behind tf.keras, but "
            f"{LEGACY_KERAS_VARIABLE}={value!r} turns the legacy Keras 2 package "
            f"(tf_keras) off on TensorFlow {_tf_version()}. Unset the variable or set "
            f"{LEGACY_KERAS_VARIABLE}=1 (accepted values: {', '.join(_LEGACY_ON)})."
        )
    if importlib.util.find_spec("tf_keras") is None:
        wanted = _minor_pin(_tf_version())
        raise ImportError(
            f"NengoDL 3.6.0 needs Keras 2, and TensorFlow {_tf_version()} ships "
            f"Keras 3; install the legacy Keras 2 package matching TensorFlow: "
            f"pip install --no-deps 'tf_keras=={wanted}' (--no-deps because tf_keras "
            f"asks for the full `tensorflow` package, which would be installed next "
            f"to tensorflow-cpu)."
        )
    tf = sys.modules.get("tensorflow")
    if tf is None:
        if value is None:
            # TensorFlow reads the variable when it is imported; nothing has imported
            # it yet, so setting it here is as good as the user exporting it. It only
            # changes what `tf.keras` means; `import keras` is still Keras 3.
            os.environ[LEGACY_KERAS_VARIABLE] = "1"
            installed[LEGACY_KERAS_VARIABLE] = "1"
        return
    if not _tf_uses_legacy_keras(tf):
        raise ImportError(
            f"TensorFlow {tf.__version__} was imported before "
            f"{LEGACY_KERAS_VARIABLE}=1 was set, so tf.keras is Keras 3, which "
            f"NengoDL 3.6.0 cannot build on. Set the variable before TensorFlow is "
            f"first imported: `export {LEGACY_KERAS_VARIABLE}=1` in the shell, or "
            f"`os.environ['{LEGACY_KERAS_VARIABLE}'] = '1'` at the top of the script, "
            f"or import nengo_jacobian before tensorflow and nengo_dl."
        )


def _tf_uses_legacy_keras(tf: types.ModuleType) -> bool:
    """Whether an already imported TensorFlow routes ``tf.keras`` to ``tf_keras``.

    TensorFlow 2.16 - 2.20 record the decision made at import time in
    ``_tf_uses_legacy_keras``; it also fixes where ``import tensorflow.keras...``
    statements look, so ``tf.keras`` (resolved lazily, on first use) alone could give
    a mixed answer. Fall back to ``tf.keras`` if the private flag ever goes away.
    """
    flag = getattr(tf, "_tf_uses_legacy_keras", None)
    if flag is not None:
        return bool(flag)
    return tf.keras.__name__.startswith("tf_keras")


def _alias_engine(package: str) -> None:
    """Register ``keras.engine[.functional]`` and the BatchNormalization V1/V2 names."""
    engine = importlib.import_module(f"{package}.engine")
    functional = importlib.import_module(f"{package}.engine.functional")
    # Only the two names NengoDL imports; `setdefault` keeps anything already there.
    for name, module in (
        ("keras.engine", engine),
        ("keras.engine.functional", functional),
    ):
        if sys.modules.setdefault(name, module) is module:
            installed[name] = module
    # A real import would also bind the submodule on its parent, and
    # `import keras.engine.functional; keras.engine.functional.X` relies on that.
    keras = importlib.import_module("keras")
    if not hasattr(keras, "engine"):
        keras.engine = engine
    if not hasattr(engine, "functional"):
        engine.functional = functional

    bn_v1 = importlib.import_module(
        f"{package}.layers.normalization.batch_normalization_v1"
    ).BatchNormalization
    bn_v2 = importlib.import_module(
        f"{package}.layers.normalization.batch_normalization"
    ).BatchNormalization
    # NengoDL's `from keras.layers import BatchNormalizationV1` reads the `keras`
    # package (Keras 3 on TF >= 2.16), so the names must go on its `layers` module.
    # They are new names there, so no existing Keras name changes meaning.
    layers = importlib.import_module("keras.layers")
    for name, cls in (("BatchNormalizationV1", bn_v1), ("BatchNormalizationV2", bn_v2)):
        if not hasattr(layers, name):
            setattr(layers, name, cls)
            installed[f"keras.layers.{name}"] = cls

    if package.startswith("tf_keras"):
        _warn_on_version_mismatch()


def _warn_on_version_mismatch() -> None:
    """tf_keras only works with the TensorFlow of the same minor version."""
    tf_keras_version = importlib.import_module("tf_keras").__version__
    tf_version = _tf_version()
    if _minor_pin(tf_keras_version) != _minor_pin(tf_version):
        warnings.warn(
            f"tf_keras {tf_keras_version} is meant for TensorFlow "
            f"{_minor_pin(tf_keras_version)}, not {tf_version}; install "
            f"pip install --no-deps 'tf_keras=={_minor_pin(tf_version)}'",
            stacklevel=3,
        )


def _tf_version() -> str:
    """TensorFlow's version, without importing it if it is not imported yet."""
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        return tf.__version__
    # The import name `tensorflow` comes from one of several distributions.
    for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "(version unknown)"


def _minor_pin(version: str) -> str:
    """``"2.20.1"`` -> ``"2.20.*"``."""
    parts = version.split(".")
    return ".".join(parts[:2]) + ".*" if len(parts) >= 2 else version


def check_synapses(network, dt: float) -> None:
    """Refuse synapses that NengoDL 3.6.0 cannot build on Nengo 4, naming them.

    NengoDL 3.6.0's ``LinearFilterBuilder`` expects the Nengo 3 shape of a filter's
    direct (feed-through, ``D``) term; Nengo 4 makes it a matrix, and the build stops
    with a bare ``AssertionError`` deep inside TensorFlow. NengoDL's main branch fixes
    it (commit c2dbadf), but no release has the fix. Only `~nengo.LinearFilter`
    synapses other than `~nengo.Lowpass` (which has a builder of its own) whose
    discretized ``D`` is non-zero are affected: e.g. ``LinearFilter([0.01, 1], [0.02,
    1])`` or any ``method="bilinear"`` filter. `~nengo.Alpha`, `~nengo.Lowpass`,
    `~nengo.synapses.Triangle` and other strictly proper filters build. On Nengo 3
    this does nothing.

    Parameters
    ----------
    network : nengo.Network or None
        The network about to be built; every object's synapse or process parameters,
        including those of learning rules, are checked.
    dt : float
        The simulator's time step (the discretized ``D`` can depend on it).

    Raises
    ------
    nengo.exceptions.ValidationError
        Naming the object, the parameter and the filter, with the ways out.

    Examples
    --------
    >>> import nengo
    >>> from nengo_jacobian import _compat
    >>> with nengo.Network() as net:
    ...     a, b = nengo.Node([0.5]), nengo.Node(size_in=1)
    ...     _ = nengo.Connection(a, b, synapse=nengo.Alpha(0.01))
    >>> _compat.check_synapses(net, dt=0.001)  # Alpha has no D term: fine
    """
    if network is None or not _linear_filter_d_unsupported():
        return
    import nengo
    import numpy as np
    from nengo.exceptions import ValidationError

    for obj, attr, synapse in _filters_of(network):
        if isinstance(synapse, nengo.Lowpass):
            continue
        state = synapse.make_state((1,), (1,), dt)
        step = synapse.make_step((1,), (1,), dt, rng=None, state=state)
        d = getattr(step, "D", None)
        if d is None or not np.any(np.asarray(d) != 0):
            continue
        raise ValidationError(
            f"{synapse} on {obj} has a direct (feed-through, D) term "
            f"(D = {np.asarray(d).ravel()[0]:.4g} at dt={dt}), which NengoDL "
            f"{_version('nengo-dl')} cannot build with Nengo {nengo.__version__} "
            f"(fixed on NengoDL's unreleased main branch). Use a strictly proper "
            f"filter (numerator of lower order than the denominator, method='zoh'; "
            f"e.g. Lowpass or Alpha), or write the filter as D plus a strictly "
            f"proper filter (a parallel synapse=None connection with transform=D), "
            f"or use Nengo 3.2 (requirements/constraints.txt).",
            attr=attr,
            obj=obj,
        )


def _linear_filter_d_unsupported() -> bool:
    """Nengo >= 4 with NengoDL <= 3.6.0: LinearFilter D terms do not build."""
    # Read from the installed metadata, without importing either package (or
    # `packaging`): `install` calls this before anything imports NengoDL.
    nengo_version, nengo_dl_version = _version("nengo"), _version("nengo-dl")
    if nengo_version is None or nengo_dl_version is None:
        return False
    return _release(nengo_version) >= (4,) and _release(nengo_dl_version) <= (3, 6, 0)


def _release(version: str) -> tuple[int, ...]:
    """``"3.6.0"`` -> ``(3, 6, 0)``; ``"4.1.0.dev0"`` -> ``(4, 1, 0)``."""
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def _filters_of(network):
    """``(obj, attr, LinearFilter)`` for every LinearFilter parameter in ``network``.

    Connections, probes, Nodes (a filter as a Node's output process), ensembles
    (noise) and the learning rules of connections.
    """
    import nengo
    from nengo.params import iter_params

    objs = list(network.all_objects)
    for conn in network.all_connections:
        rules = conn.learning_rule_type
        if isinstance(rules, dict):
            objs.extend(rules.values())
        elif isinstance(rules, (list, tuple)):
            objs.extend(rules)
        elif rules is not None:
            objs.append(rules)
    for obj in objs:
        for attr in iter_params(obj):
            value = getattr(obj, attr, None)
            if isinstance(value, nengo.LinearFilter):
                yield obj, attr, value


def _quiet_nengo_version_warning() -> None:
    """Silence NengoDL 3.6.0's "not tested with your Nengo version" on Nengo 4.1.

    This package runs its suite on that pair and replaces the blanket warning by
    `check_synapses`, which names the one thing that fails (every command-line run
    would otherwise start with a two-line warning).
    """
    warnings.filterwarnings(
        "ignore",
        message="This version of NengoDL has not been tested with your Nengo version",
        category=UserWarning,
    )
    installed["warnings: NengoDL's Nengo version warning"] = "ignore"


def _version(dist: str) -> str | None:
    """The installed version of ``dist``, None if it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
