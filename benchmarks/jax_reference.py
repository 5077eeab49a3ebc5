"""The Jacobian-speed network written by hand in JAX, for an honest comparison.

Runs in a separate venv with JAX (which needs numpy >= 2; our TensorFlow venv cannot
have it) and imports only JAX, numpy and the standard library. It loads an ``.npz``
written by ``_jax_bridge.export_params`` (the weights of a built
``nengo_jacobian.Simulator`` and NengoDL's rate-mode output), simulates the same
network step by step with `jax.lax.scan`, checks the output against NengoDL's, and
times ``jax.jit(jax.jacrev(...))`` (and ``jax.jacfwd``) of the probe output w.r.t. the
input and w.r.t. every labelled weight.

One time step, in NengoDL's operator order (``sim.tensor_graph.plan``): filter outputs
are read before the filters update ("update" signals), a ``synapse=None`` connection
passes its value within the step, and the probe reads its filter's output before that
filter updates. Every synapse therefore delays by one step::

    r_a[t]   = LIFRate(E_a (W_in x[t]) + bias_a)
    r_b[t]   = LIFRate(E_b (y_ab[t-1] + y_bb[t-1]) + bias_b)
    out[t]   = y_p[t-1]
    y_ab[t]  = a_ab y_ab[t-1] + b_ab W_ab r_a[t]      (likewise y_bb with W_bb r_b[t],
                                                        y_p with W_p r_b[t])

with all filter states zero before step 0. ``LIFRate(J) = amplitude / (tau_ref +
tau_rc log1p(1 / (J - 1)))`` where ``J > 1``, else 0 (nengo.LIFRate, and NengoDL's
``LIFRateBuilder``, whose gradient this matches). ``a_*`` and ``b_*`` are Nengo's own
zero-order-hold Lowpass coefficients, exported by the bridge.

Prints one JSON object on stdout::

    {"d out/d input (jacrev)": {"first": s, "warm": s, "method": ..., "shape": ...},
     "d out/d input (jacfwd)": {...}, "d out/d weights (jacrev)": {...},
     "max_rel_error_vs_nengo_dl": ..., ...}

``first`` is the first call of a fresh ``jax.jit`` (tracing and compiling included;
JAX's backend is already up); ``warm`` is the median of ``--repeats`` later calls, each
waited for with ``block_until_ready``.

Run: ``/work/envs/jax/bin/python benchmarks/jax_reference.py --params net.npz
[--repeats 20] [--dtype float32] [--save-jacobians jac.npz]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

#: The labelled weights, in the order of ``sim.weights`` (``_jax_bridge.WEIGHT_KEYS``).
WEIGHT_KEYS = (
    "a_scaled_encoders",
    "a_bias",
    "b_scaled_encoders",
    "b_bias",
    "stim_a_weights",
    "a_b_weights",
    "b_b_weights",
)

#: Everything else the simulation needs; held constant.
CONSTANT_KEYS = (
    "probe_weights",
    "ab_synapse",
    "bb_synapse",
    "probe_synapse",
    "a_tau_rc",
    "a_tau_ref",
    "a_amplitude",
    "b_tau_rc",
    "b_tau_ref",
    "b_amplitude",
)

#: NengoDL's LIFRate keeps ``J - 1`` at least this positive inside the log, so that
#: the unused branch of its ``tf.where`` has a finite gradient; we do the same.
EPSILON = 1e-15


def load(path: str, dtype) -> tuple:
    """Read an exported network.

    Parameters
    ----------
    path : str
        A file written by ``_jax_bridge.export_params``.
    dtype : numpy dtype
        Precision to simulate in.

    Returns
    -------
    x : jax.Array
        Input, shape ``(n_steps, input dims)``.
    weights : dict
        The labelled weights (`WEIGHT_KEYS`), each shaped as in ``sim.weights``.
    constants : dict
        Probe decoders, synapse coefficients and neuron constants (`CONSTANT_KEYS`).
    y_nengo_dl : numpy.ndarray
        NengoDL's rate-mode output, shape ``(n_steps, probe dims)``.
    meta : dict
        Weight names and the exporting versions.
    """
    with np.load(path, allow_pickle=False) as data:
        x = jnp.asarray(data["x"], dtype)
        weights = {k: jnp.asarray(data[k], dtype) for k in WEIGHT_KEYS}
        constants = {k: jnp.asarray(data[k], dtype) for k in CONSTANT_KEYS}
        y_nengo_dl = np.array(data["y_nengo_dl"])
        meta = json.loads(str(data["__meta__"]))
    return x, weights, constants, y_nengo_dl, meta


def lif_rate(J, tau_rc, tau_ref, amplitude):
    """Firing rates of LIFRate neurons for input currents ``J`` (NengoDL's form).

    Parameters
    ----------
    J : jax.Array
        Input currents, shape ``(n_neurons,)``.
    tau_rc, tau_ref, amplitude : float
        The neuron type's constants.

    Returns
    -------
    jax.Array
        Rates, shape ``(n_neurons,)``; zero where ``J <= 1``.
    """
    j = J - 1
    rates = amplitude / (
        tau_ref + tau_rc * jnp.log1p(1 / jnp.maximum(j, jnp.asarray(EPSILON, j.dtype)))
    )
    return jnp.where(j > 0, rates, jnp.zeros_like(rates))


def simulate(x, weights, constants):
    """Run the network in rate mode and return the probe output.

    Parameters
    ----------
    x : jax.Array
        Input, shape ``(n_steps, input dims)``.
    weights : dict
        The labelled weights (`WEIGHT_KEYS`).
    constants : dict
        The rest of the network (`CONSTANT_KEYS`).

    Returns
    -------
    jax.Array
        Probe output, shape ``(n_steps, probe dims)``.
    """
    w, c = weights, constants
    ab_a, ab_b = c["ab_synapse"]
    bb_a, bb_b = c["bb_synapse"]
    p_a, p_b = c["probe_synapse"]

    def step(state, x_t):
        y_ab, y_bb, y_p = state
        r_a = lif_rate(
            w["a_scaled_encoders"] @ (w["stim_a_weights"] @ x_t) + w["a_bias"],
            c["a_tau_rc"],
            c["a_tau_ref"],
            c["a_amplitude"],
        )
        r_b = lif_rate(
            w["b_scaled_encoders"] @ (y_ab + y_bb) + w["b_bias"],
            c["b_tau_rc"],
            c["b_tau_ref"],
            c["b_amplitude"],
        )
        out = y_p
        y_ab = ab_a * y_ab + ab_b * (w["a_b_weights"] @ r_a)
        y_bb = bb_a * y_bb + bb_b * (w["b_b_weights"] @ r_b)
        y_p = p_a * y_p + p_b * (c["probe_weights"] @ r_b)
        return (y_ab, y_bb, y_p), out

    zeros = jnp.zeros(w["a_b_weights"].shape[0], x.dtype)
    probe_zeros = jnp.zeros(c["probe_weights"].shape[0], x.dtype)
    _, ys = jax.lax.scan(step, (zeros, zeros, probe_zeros), x)
    return ys


def timed(fn, repeats: int) -> tuple:
    """``(first call, median of repeats warm calls, last result)``; times in seconds."""
    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    first = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = jax.block_until_ready(fn())
        warm.append(time.perf_counter() - start)
    return first, statistics.median(warm) if warm else float("nan"), result


def main() -> None:
    """Check against NengoDL's output, time the Jacobians, print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help=".npz from export_params")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--save-jacobians", help="also save the Jacobians (.npz)")
    args = parser.parse_args()

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = np.dtype(args.dtype)
    x, weights, constants, y_nengo_dl, meta = load(args.params, dtype)

    y = np.asarray(jax.jit(simulate)(x, weights, constants), np.float64)
    abs_error = float(np.max(np.abs(y - y_nengo_dl)))
    # Relative to the output's scale: elementwise ratios are meaningless where the
    # probe is exactly zero (it is at step 0, before any filter has updated).
    scale = float(np.max(np.abs(y_nengo_dl)))

    # case: (key prefix in --save-jacobians, transform, argnums of simulate)
    cases = {
        "d out/d input (jacrev)": ("input_jacrev", jax.jacrev, 0),
        "d out/d input (jacfwd)": ("input_jacfwd", jax.jacfwd, 0),
        "d out/d weights (jacrev)": ("weights", jax.jacrev, 1),
    }
    report = {}
    jacobians = {}
    for case, (name, transform, argnums) in cases.items():
        # A fresh jit per case, so that the first call includes tracing and compiling.
        fn = jax.jit(transform(simulate, argnums=argnums))
        first, warm, jac = timed(lambda fn=fn: fn(x, weights, constants), args.repeats)
        if isinstance(jac, dict):
            shape = {k: list(jac[k].shape) for k in WEIGHT_KEYS}
            jacobians.update({f"{name}:{k}": v for k, v in jac.items()})
        else:
            shape = list(jac.shape)
            jacobians[name] = jac
        method = f"jax.jit(jax.{transform.__name__}(simulate, argnums={argnums}))"
        report[case] = {"first": first, "warm": warm, "method": method, "shape": shape}

    report.update(
        {
            "max_rel_error_vs_nengo_dl": abs_error / scale,
            "max_abs_error_vs_nengo_dl": abs_error,
            "max_abs_nengo_dl_output": scale,
            "dtype": args.dtype,
            "n_steps": int(x.shape[0]),
            "n_neurons": int(weights["a_bias"].shape[0]),
            "repeats": args.repeats,
            "weight_names": meta["weight_names"],
            "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()],
        }
    )
    if args.save_jacobians:
        np.savez(
            args.save_jacobians, **{k: np.asarray(v) for k, v in jacobians.items()}
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
