"""Bridge to the hand-written JAX reference (``jax_reference.py``).

JAX needs numpy >= 2, which our TensorFlow venv cannot have, so the reference runs in
a separate venv and a separate process. This module runs in *our* venv: it exports the
parameters of a built ``nengo_jacobian.Simulator`` of the benchmark network (see
``jacobian_speed.build``) to an ``.npz`` file, together with NengoDL's rate-mode forward
output for checking, and runs ``jax_reference.py`` on that file.

Example (in our venv)::

    from _jax_bridge import export_params, run_jax

    net, stim, out = build(200)
    with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
        export_params(sim, stim, out, x, "net.npz")
    result = run_jax("net.npz", repeats=20)   # None if the JAX venv is missing

The JAX venv is optional: ``python -m venv /work/envs/jax`` and
``/work/envs/jax/bin/pip install jax jaxlib numpy``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nengo
import nengo_dl
import numpy as np
import tensorflow as tf

#: The JAX venv's interpreter, as the benchmark notes set it up.
DEFAULT_JAX_PYTHON = "/work/envs/jax/bin/python"

#: The reference script, next to this file.
JAX_REFERENCE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "jax_reference.py"
)

#: Keys of the exported labelled weights, in ``sim.weights`` order (which is the order
#: of the weights request in ``jacobian_speed.py``); ``jax_reference.WEIGHT_KEYS`` must
#: list the same keys in the same order.
WEIGHT_KEYS = (
    "a_scaled_encoders",
    "a_bias",
    "b_scaled_encoders",
    "b_bias",
    "stim_a_weights",
    "a_b_weights",
    "b_b_weights",
)


def export_params(sim, stim, probe, x, path) -> dict:
    """Save the benchmark network's parameters and rate-mode output to ``path``.

    The network must have the structure of ``jacobian_speed.build``: an input Node
    ``stim`` -> Ensemble ``a`` (``synapse=None``) -> Ensemble ``b`` (Lowpass) with a
    Lowpass recurrent connection ``b -> b``, and ``probe`` a Lowpass-filtered decoded
    probe of ``b``. The weights are the live values of ``sim.weights`` (so trained or
    assigned weights are exported as they are now); the probe's own decoders, which are
    no labelled weight, come from ``sim.data``, which NengoDL also reads live. Synapse
    coefficients are taken from Nengo's own discretization (``synapse.make_step``), so
    both sides filter with the same numbers.

    Parameters
    ----------
    sim : nengo_jacobian.Simulator
        A built simulator with ``minibatch_size == 1``. The saved output is computed
        from the initial (zero) state, as the JAX reference starts; the simulator's own
        state is left as it was.
    stim : nengo.Node
        The input Node.
    probe : nengo.Probe
        The decoded, filtered probe of ``b``.
    x : array_like
        Input, shape ``(n_steps, stim.size_out)`` or ``(1, n_steps, stim.size_out)``;
        cast to the simulator's dtype.
    path : str or os.PathLike
        The ``.npz`` file to write.

    Returns
    -------
    dict
        Everything written to ``path`` (numpy arrays), including ``"y_nengo_dl"``,
        NengoDL's forward output in rate mode, shape ``(n_steps, probe dims)``.

    Raises
    ------
    ValueError
        If the network, the simulator or ``x`` does not fit the benchmark.
    NotImplementedError
        If a neuron type or synapse is not one the JAX reference implements.
    """
    if sim.minibatch_size != 1:
        raise ValueError(
            f"export_params needs minibatch_size=1, got {sim.minibatch_size}; build "
            "the Simulator with minibatch_size=1"
        )
    x = np.asarray(x, dtype=np.dtype(sim.tensor_graph.dtype))
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] != 1 or x.shape[2] != stim.size_out:
        raise ValueError(
            f"x must have shape (n_steps, {stim.size_out}) or (1, n_steps, "
            f"{stim.size_out}), got {x.shape}"
        )
    smoothing = nengo_dl.config.get_setting(sim.model, "lif_smoothing")
    if smoothing is not None:
        raise NotImplementedError(
            f"lif_smoothing={smoothing} trains with SoftLIFRate; the JAX reference "
            "implements LIFRate only (lif_smoothing=None)"
        )

    conn_in, conn_ab, conn_bb, conn_probe = _find_connections(sim, stim, probe)
    a, b = conn_in.post_obj, probe.target
    n_steps = x.shape[1]
    y = _rate_output(sim, x)

    arrays = {
        "dt": np.float64(sim.dt),
        "n_steps": np.int64(n_steps),
        "x": x[0],
        "y_nengo_dl": y[0],
        "probe_weights": np.asarray(sim.data[conn_probe].weights),
        "ab_synapse": _lowpass_coefficients(conn_ab, sim.dt),
        "bb_synapse": _lowpass_coefficients(conn_bb, sim.dt),
        "probe_synapse": _lowpass_coefficients(conn_probe, sim.dt),
    }
    for prefix, ens in (("a", a), ("b", b)):
        arrays.update(_rate_params(ens, prefix))
    entries = {
        "a_scaled_encoders": sim.weights[a, "scaled_encoders"],
        "a_bias": sim.weights[a.neurons, "bias"],
        "b_scaled_encoders": sim.weights[b, "scaled_encoders"],
        "b_bias": sim.weights[b.neurons, "bias"],
        "stim_a_weights": sim.weights[conn_in],
        "a_b_weights": sim.weights[conn_ab],
        "b_b_weights": sim.weights[conn_bb],
    }
    for key in WEIGHT_KEYS:
        arrays[key] = entries[key].read()
    names = {key: entries[key].name for key in WEIGHT_KEYS}
    arrays["__meta__"] = np.array(
        json.dumps(
            {
                "weight_names": names,
                "nengo": nengo.__version__,
                "nengo_dl": nengo_dl.__version__,
            }
        )
    )
    np.savez(path, **arrays)
    return arrays


def _rate_output(sim, x: np.ndarray) -> np.ndarray:
    """NengoDL's rate-mode output for ``x`` from the initial state; state kept.

    ``sim.keras_model(..., training=True)`` starts from the simulator's saved state and,
    in a stateful simulator, advances it. The JAX reference starts from the initial
    state, so we reset the state for this one call and put the user's state back after.
    """
    saved = list(sim.tensor_graph.saved_state.values())
    snapshot = tf.keras.backend.batch_get_value(saved)
    sim.reset(include_trainable=False, include_probes=False, include_processes=False)
    try:
        steps = np.full((1, 1), x.shape[1], np.int32)
        return np.asarray(sim.keras_model([x, steps], training=True)[0])
    finally:
        tf.keras.backend.batch_set_value(list(zip(saved, snapshot)))
        # Re-read the step counter from the restored state, as
        # nengo_dl.callbacks.IsolateState does.
        sim._update_steps()


def _find_connections(sim, stim, probe) -> tuple:
    """``(stim -> a, a -> b, b -> b, b -> probe)`` connections, or a ValueError."""
    b = probe.target
    if not isinstance(b, nengo.Ensemble) or probe.attr != "decoded_output":
        raise ValueError(
            f"probe must be a decoded-output probe of an Ensemble, got {probe} of "
            f"{probe.attr!r}"
        )
    conns = sim.model.toplevel.all_connections

    def only(matches, what):
        if len(matches) != 1:
            raise ValueError(
                f"The network must have exactly one {what} connection, found "
                f"{len(matches)}; export_params handles the jacobian_speed network"
            )
        return matches[0]

    conn_in = only([c for c in conns if c.pre_obj is stim], "stim -> ensemble")
    a = conn_in.post_obj
    if not isinstance(a, nengo.Ensemble) or conn_in.synapse is not None:
        raise ValueError(
            f"{conn_in} must go to an Ensemble with synapse=None, got "
            f"{conn_in.post_obj} with synapse={conn_in.synapse}"
        )
    conn_ab = only([c for c in conns if c.pre_obj is a and c.post_obj is b], "a -> b")
    conn_bb = only([c for c in conns if c.pre_obj is b and c.post_obj is b], "b -> b")
    conn_probe = only(
        [
            c
            for c in sim.model.params
            if isinstance(c, nengo.Connection) and c.post_obj is probe
        ],
        "b -> probe",
    )
    return conn_in, conn_ab, conn_bb, conn_probe


def _lowpass_coefficients(conn, dt: float) -> np.ndarray:
    """``[a, b]`` of the filter step ``y[t] = a y[t-1] + b u[t]``, as Nengo builds it.

    NengoDL's ``LinearFilterBuilder`` runs one-state filters with these ``A`` and
    ``B * C`` constants; reading them from ``make_step`` keeps Nengo's discretization
    (zero-order hold) without re-deriving it.
    """
    synapse = conn.synapse
    if not isinstance(synapse, nengo.synapses.LinearFilter):
        raise NotImplementedError(
            f"{conn} has synapse {synapse}; the JAX reference implements one-state "
            "linear filters (e.g. nengo.Lowpass) only"
        )
    shape = (conn.size_out,)
    state = synapse.make_state(shape, shape, dt, dtype=np.float64)
    step = synapse.make_step(shape, shape, dt, rng=None, state=state)
    if not isinstance(step, nengo.synapses.LinearFilter.OneX):
        raise NotImplementedError(
            f"{conn} has synapse {synapse}, which is not a one-state filter; the JAX "
            "reference implements one-state linear filters (e.g. nengo.Lowpass) only"
        )
    return np.array([step.a, step.b], dtype=np.float64)


def _rate_params(ens, prefix: str) -> dict:
    """LIFRate constants of ``ens`` (LIF trains as LIFRate in NengoDL)."""
    neuron_type = ens.neuron_type
    if not isinstance(neuron_type, (nengo.LIF, nengo.LIFRate)):
        raise NotImplementedError(
            f"{ens} has neuron type {neuron_type}; the JAX reference implements LIF "
            "and LIFRate (rate mode) only"
        )
    return {
        f"{prefix}_tau_rc": np.float64(neuron_type.tau_rc),
        f"{prefix}_tau_ref": np.float64(neuron_type.tau_ref),
        f"{prefix}_amplitude": np.float64(neuron_type.amplitude),
    }


def run_jax(
    path,
    python: str = DEFAULT_JAX_PYTHON,
    repeats: int = 5,
    *,
    dtype: str = "float32",
    save_jacobians=None,
    timeout: float = 1800.0,
) -> dict | None:
    """Run ``jax_reference.py`` on an exported file in the JAX venv.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by `export_params`.
    python : str
        The JAX venv's interpreter.
    repeats : int
        Warm calls per case; the reported warm time is their median.
    dtype : {"float32", "float64"}
        Precision of the JAX simulation.
    save_jacobians : str or os.PathLike, optional
        If given, the reference also saves its Jacobians there (``.npz``):
        ``"input_jacrev"`` and ``"input_jacfwd"``, shape ``(n_steps, probe dims,
        n_steps, input dims)``, and ``"weights:KEY"`` for each of `WEIGHT_KEYS`, shape
        ``(n_steps, probe dims, *weight shape)``.
    timeout : float
        Seconds before the subprocess is stopped.

    Returns
    -------
    dict or None
        The reference's JSON report (timings per case and the error against NengoDL's
        output), or None, with the reason printed, if ``python`` does not exist
        (JAX is optional).

    Raises
    ------
    RuntimeError
        If the reference fails or prints something other than one JSON object.
    """
    if not os.path.exists(python):
        print(
            f"JAX reference skipped: {python} does not exist (create it with "
            f"'python -m venv {os.path.dirname(os.path.dirname(python))}' and "
            "'pip install jax jaxlib numpy')",
            file=sys.stderr,
        )
        return None
    cmd = [
        python,
        JAX_REFERENCE,
        "--params",
        os.fspath(path),
        "--repeats",
        str(repeats),
        "--dtype",
        dtype,
    ]
    if save_jacobians is not None:
        cmd += ["--save-jacobians", os.fspath(save_jacobians)]
    # Our venv's variables (e.g. PYTHONPATH, VIRTUAL_ENV) must not leak into JAX's.
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr[-2000:]}"
        )
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise RuntimeError(
            f"{' '.join(cmd)} printed no JSON object ({err}):\n{proc.stdout[-2000:]}"
        ) from err
