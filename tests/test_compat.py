"""The TensorFlow/Keras alias layer (`nengo_jacobian._compat`, issue 7).

Runs on every stack: tests that only mean something on one Keras layout skip
elsewhere. The error paths and "what does install() change" run in a fresh
interpreter (`_run`), because TensorFlow's Keras choice is fixed per process.
"""

import os
import subprocess
import sys
import textwrap

import nengo
import nengo_dl
import numpy as np
import pytest
import tensorflow as tf
from nengo.exceptions import ValidationError

from nengo_jacobian import _compat

LAYOUT = _compat._keras_layout()
KERAS3 = pytest.mark.skipif(
    LAYOUT != "keras3", reason="only Keras 3 (TensorFlow >= 2.16) needs tf_keras"
)

# Loads _compat.py by path, so that the package __init__ (which imports nengo_dl and
# so TensorFlow) does not run before the code under test.
_LOAD = f"""
import importlib.util, sys
_spec = importlib.util.spec_from_file_location("_compat", {_compat.__file__!r})
_compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_compat)
"""


def _run(*chunks, **env):
    """Run the code ``chunks`` in a fresh Python without our TF_USE_LEGACY_KERAS."""
    clean = {k: v for k, v in os.environ.items() if k != _compat.LEGACY_KERAS_VARIABLE}
    clean["TF_CPP_MIN_LOG_LEVEL"] = "3"
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "".join(textwrap.dedent(c) for c in chunks)],
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_install_is_idempotent():
    before_modules = dict(sys.modules)
    before_installed = dict(_compat.installed)
    before_env = dict(os.environ)
    _compat.install()
    _compat.install()
    assert dict(sys.modules) == before_modules
    assert _compat.installed == before_installed
    assert dict(os.environ) == before_env


def test_nengo_dl_sees_the_tf_keras_classes():
    # The Converter checks models with isinstance(model, compat.Functional): that
    # class must be the one behind tf.keras, or every converted model is rejected.
    inp = tf.keras.Input((3,))
    model = tf.keras.Model(inp, tf.keras.layers.Dense(2)(inp))
    assert isinstance(model, nengo_dl.compat.Functional)
    assert nengo_dl.compat.BatchNormalizationV2 is tf.keras.layers.BatchNormalization


@pytest.mark.skipif(
    LAYOUT != "engine" or _compat._linear_filter_d_unsupported(),
    reason="Keras <= 2.12 with Nengo 3 only",
)
def test_no_change_where_keras_engine_exists():
    assert _compat.installed == {}
    assert sys.modules["keras.engine"].__name__ == "keras.engine"
    assert sys.modules["keras.engine.functional"].__name__ == "keras.engine.functional"


@pytest.mark.skipif(LAYOUT != "src.engine", reason="Keras 2.13 - 2.15 only")
def test_keras_src_engine_aliased():
    import keras.engine.functional
    import keras.src.engine.functional

    assert keras.engine.functional is keras.src.engine.functional
    assert set(_compat.installed) >= {"keras.engine", "keras.engine.functional"}
    assert _compat.LEGACY_KERAS_VARIABLE not in _compat.installed


@KERAS3
def test_keras3_routes_to_tf_keras():
    import keras.engine.functional
    import tf_keras.src.engine.functional

    assert keras.engine.functional is tf_keras.src.engine.functional
    assert tf.keras.__name__.startswith("tf_keras")
    assert os.environ[_compat.LEGACY_KERAS_VARIABLE] in ("1", "true", "True")


@pytest.mark.slow
def test_what_install_changes_in_a_fresh_process():
    result = _run(
        _LOAD,
        """
        import os
        modules, env = set(sys.modules), dict(os.environ)
        _compat.install()
        new = set(sys.modules) - modules
        added = sorted(m for m in new if m.startswith("keras."))
        # beyond the standard library (importlib.metadata's email parser)
        third_party = {m for m in new if m.split(".")[0] not in sys.stdlib_module_names}
        print(sorted(_compat.installed))
        print(added if _compat.installed else sorted(third_party))
        print(sorted(set(os.environ.items()) - set(env.items())))
        import nengo_dl
        """,
    )
    assert result.returncode == 0, result.stderr
    installed, added, env = result.stdout.splitlines()
    if LAYOUT == "engine" and not _compat._linear_filter_d_unsupported():
        # TensorFlow <= 2.12, Nengo 3: nothing (outside the standard library)
        # imported, nothing aliased, set or filtered
        assert (installed, added, env) == ("[]", "[]", "[]")
    elif LAYOUT == "src.engine":
        assert "'keras.engine', 'keras.engine.functional'" in installed
        assert env == "[]"
    else:
        assert installed.startswith("['TF_USE_LEGACY_KERAS', 'keras.engine', ")
        assert env == "[('TF_USE_LEGACY_KERAS', '1')]"


@KERAS3
@pytest.mark.slow
def test_sets_the_variable_only_before_tensorflow_is_imported():
    result = _run(
        _LOAD,
        """
        _compat.install()
        import tensorflow as tf
        import nengo_dl
        print(tf.keras.__name__, nengo_dl.compat.Functional.__module__)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "tf_keras.api._v2.keras",
        "tf_keras.src.engine.functional",
    ]


@KERAS3
@pytest.mark.slow
@pytest.mark.parametrize("value", ["1", "true", "True"])
def test_tensorflow_imported_first_with_the_variable_set(value):
    result = _run(
        """
        import tensorflow as tf
        """,
        _LOAD,
        """
        _compat.install()
        import nengo_dl
        print(sorted(_compat.installed))
        """,
        TF_USE_LEGACY_KERAS=value,
    )
    assert result.returncode == 0, result.stderr
    assert "TF_USE_LEGACY_KERAS" not in result.stdout


@KERAS3
@pytest.mark.slow
def test_error_when_tensorflow_was_imported_without_the_variable():
    result = _run(
        """
        import tensorflow as tf
        """,
        _LOAD,
        """
        _compat.install()
        """,
    )
    assert result.returncode == 1
    assert (
        "was imported before TF_USE_LEGACY_KERAS=1 was set, so tf.keras is Keras 3"
        in result.stderr
    )
    assert "export TF_USE_LEGACY_KERAS=1" in result.stderr


@KERAS3
@pytest.mark.slow
def test_error_when_the_variable_turns_legacy_keras_off():
    result = _run(_LOAD, "_compat.install()\n", TF_USE_LEGACY_KERAS="0")
    assert result.returncode == 1
    assert "TF_USE_LEGACY_KERAS='0' turns the legacy Keras 2 package" in result.stderr


@KERAS3
@pytest.mark.slow
def test_error_when_tf_keras_is_missing():
    # sys.modules[name] = None makes find_spec (and import) report it missing
    result = _run(
        """
        import sys
        sys.modules["tf_keras"] = None
        """,
        _LOAD,
        "_compat.install()\n",
    )
    assert result.returncode == 1
    assert "pip install --no-deps 'tf_keras==2." in result.stderr
    assert "ships Keras 3" in result.stderr


@pytest.mark.parametrize(
    "folders, layout",
    [
        (["engine", "layers"], "engine"),
        (["src/engine", "src/layers"], "src.engine"),
        (["src/layers", "layers", "api"], "keras3"),
    ],
)
def test_layout_from_folders(tmp_path, folders, layout):
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True)
    assert _compat._layout_of([str(tmp_path)]) == layout


def test_legacy_flag_read_from_tensorflow():
    class FakeTF:
        _tf_uses_legacy_keras = False

    assert _compat._tf_uses_legacy_keras(FakeTF) is False
    assert _compat._minor_pin("2.20.1") == "2.20.*"


# NengoDL 3.6.0 + Nengo 4: LinearFilter synapses with a D term do not build.
D_TERM_BROKEN = _compat._linear_filter_d_unsupported()
NENGO_4_ONLY = pytest.mark.skipif(
    not D_TERM_BROKEN, reason="Nengo 3: NengoDL 3.6.0 builds LinearFilter D terms"
)
D_FILTER = nengo.LinearFilter([0.01, 1], [0.02, 1])  # (0.01 s + 1) / (0.02 s + 1)


def _filtered_net(where, synapse):
    """A Node -> Node network with ``synapse`` at ``where``."""
    with nengo.Network(seed=0) as net:
        stim = nengo.Node([0.5], label="stim")
        ens = nengo.Ensemble(10, 1, label="ens")
        out = nengo.Node(size_in=1, label="out")
        nengo.Connection(stim, ens, synapse=None)
        nengo.Connection(
            stim, out, synapse=synapse if where == "connection" else None, label="c"
        )
        if where == "probe":
            nengo.Probe(out, synapse=synapse, label="p")
        elif where == "pes":
            pes = nengo.PES(pre_synapse=synapse)
            conn = nengo.Connection(ens, out, learning_rule_type=pes)
            err = nengo.Node(size_in=1, label="err")
            nengo.Connection(err, conn.learning_rule)
        elif where == "node":
            filt = nengo.Node(synapse, size_in=1, size_out=1, label="filt")
            nengo.Connection(stim, filt, synapse=None)
        nengo.Probe(out, synapse=None)
    return net


@pytest.mark.parametrize(
    "where, attr, obj",
    [
        ("connection", "Connection.synapse", r"<Connection c>"),
        ("probe", "Probe.synapse", r"<Probe .p. "),
        ("pes", "PES.pre_synapse", r"PES\("),
        ("node", "Node.output", r"<Node .filt.>"),
    ],
)
def test_linear_filter_d_term_error_names_the_object(monkeypatch, where, attr, obj):
    # The message on every stack (the check itself only runs on Nengo >= 4).
    monkeypatch.setattr(_compat, "_linear_filter_d_unsupported", lambda: True)
    with pytest.raises(
        ValidationError,
        match=rf"^{attr}: LinearFilter\(num=.*\) on {obj}.* has a direct "
        r"\(feed-through, D\) term \(D = 0\.5 at dt=0\.001\).*cannot build with Nengo"
        r".*strictly proper.*D plus a strictly proper filter.*Nengo 3\.2",
    ):
        _compat.check_synapses(_filtered_net(where, D_FILTER), dt=0.001)


@pytest.mark.parametrize(
    "synapse",
    [
        nengo.Alpha(0.01),
        nengo.Lowpass(0),  # D = 1, but Lowpass has a builder of its own
        nengo.LinearFilter([1], [0.0001, 0.02, 1]),
        nengo.synapses.Triangle(0.01),
    ],
    ids=["alpha", "lowpass0", "proper", "triangle"],
)
def test_filters_without_d_term_pass_the_check(monkeypatch, make_sim, synapse):
    monkeypatch.setattr(_compat, "_linear_filter_d_unsupported", lambda: True)
    net = _filtered_net("connection", synapse)
    _compat.check_synapses(net, dt=0.001)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(20)
    sim = make_sim(net)
    sim.run_steps(20)
    probe = net.probes[-1]
    # float32 NengoDL against the float64 reference on O(1) values
    np.testing.assert_allclose(sim.data[probe], ref.data[probe], atol=1e-5)


def test_bilinear_discretization_has_a_d_term(monkeypatch):
    # strictly proper in s, but the bilinear transform adds a D term
    monkeypatch.setattr(_compat, "_linear_filter_d_unsupported", lambda: True)
    net = _filtered_net(
        "connection", nengo.LinearFilter([1], [0.01, 1], method="bilinear")
    )
    with pytest.raises(ValidationError, match=r"method='bilinear'.*\(D = 0\.04762"):
        _compat.check_synapses(net, dt=0.001)


@NENGO_4_ONLY
def test_simulator_refuses_d_term_on_nengo_4(make_sim):
    net = _filtered_net("connection", D_FILTER)
    with pytest.raises(ValidationError, match=r"^Connection\.synapse: LinearFilter"):
        make_sim(net)
    # what it saves users from: a bare AssertionError from inside the Keras layer
    with pytest.raises(AssertionError):
        nengo_dl.Simulator(net, progress_bar=False).close()


@pytest.mark.skipif(
    D_TERM_BROKEN, reason="NengoDL 3.6.0 + Nengo 4 cannot build D terms"
)
def test_d_term_builds_on_nengo_3(make_sim):
    net = _filtered_net("connection", D_FILTER)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(20)
    sim = make_sim(net)
    sim.run_steps(20)
    probe = net.probes[-1]
    np.testing.assert_allclose(sim.data[probe], ref.data[probe], atol=1e-5)


@pytest.mark.slow
def test_nengo_version_warning_only_where_the_pair_is_nengo_4():
    result = _run(
        _LOAD,
        """
        import warnings
        _compat.install()
        ours = [
            f for f in warnings.filters
            if f[1] is not None and f[1].pattern.startswith("This version of NengoDL")
        ]
        import nengo_dl  # warns on stderr unless filtered
        print(len(ours))
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "has not been tested with your Nengo version" not in result.stderr
    assert result.stdout.split()[-1] == ("1" if D_TERM_BROKEN else "0")
