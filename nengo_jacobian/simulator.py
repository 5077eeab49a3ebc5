"""The adapter: a `nengo_dl.Simulator` with labelled weights and Jacobians."""

from __future__ import annotations

import nengo_dl
import numpy as np

from nengo_jacobian import _compat, outputs, products, training
from nengo_jacobian._settings import forced_setting
from nengo_jacobian.jacobian import compute_blocks, compute_jacobian
from nengo_jacobian.labels import WeightTable
from nengo_jacobian.results import JacobianResult, build_result


class Simulator(nengo_dl.Simulator):
    """A `nengo_dl.Simulator` that labels its weights and computes Jacobians.

    It takes exactly the arguments of `nengo_dl.Simulator` and can be used wherever
    one is expected (``predict``, ``fit``, ``sim.data``, as a context manager ...). It
    builds the network with NengoDL's graph simplifications turned off, so that every
    weight keeps a variable of its own kind, and then adds:

    - ``sim.weights``: a `~nengo_jacobian.labels.WeightTable` of every weight tensor,
      labelled with its Nengo object, attribute and place in NengoDL's merged
      variables;
    - `jacobian`: exact Jacobians of probe outputs w.r.t. input Nodes and weights.

    The user's network object is not modified: the simplification setting is applied
    during the build only.

    Parameters
    ----------
    network : nengo.Network
        The network to simulate.
    *args, **kwargs
        Passed on to `nengo_dl.Simulator` (``dt``, ``seed``, ``minibatch_size``,
        ``unroll_simulation``, ``progress_bar`` ...).

    Attributes
    ----------
    weights : WeightTable
        The labelled weights.
    jacobian_info : dict
        What the last `jacobian` call did: ``engine``, ``seconds``, ``lanes``,
        ``passes`` and, for the reverse engine, ``steps_simulated`` (per pass:
        causality lets a pass stop at its latest output step).

    Examples
    --------
    >>> import nengo, numpy as np
    >>> import nengo_jacobian
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node(np.zeros(2), label="stim")
    ...     relu = nengo.RectifiedLinear()
    ...     ens = nengo.Ensemble(20, 2, neuron_type=relu, label="ens")
    ...     conn = nengo.Connection(stim, ens, synapse=None)
    ...     out = nengo.Probe(ens, synapse=None)
    >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
    ...     J = sim.jacobian(out, stim, n_steps=5)
    ...     W = sim.jacobian(out, ens.neurons, n_steps=5)
    >>> J.shape   # (minibatch, n_steps, probe dims, n_steps, node dims)
    (1, 5, 2, 5, 2)
    >>> W.shape   # (minibatch, n_steps, probe dims, *bias shape)
    (1, 5, 2, 20)
    """

    def __init__(self, network, *args, **kwargs):
        self.closed = (
            None  # as nengo_dl does first, so __del__ works if the build fails
        )
        # Lane graphs and traced functions, keyed by request signature.
        self._jacobian_cache = {}
        model = kwargs.get("model")
        toplevel = network if network is not None else getattr(model, "toplevel", None)
        dt = args[0] if args else kwargs.get("dt", getattr(model, "dt", 0.001))
        _compat.check_synapses(toplevel, dt)  # NengoDL 3.6 + Nengo 4: name the synapse
        with forced_setting(toplevel, "simplifications", []):
            super().__init__(network, *args, **kwargs)
        self.weights = WeightTable(self)
        self.jacobian_info = {}

    def jacobian(
        self,
        of,
        wrt,
        data=None,
        n_steps: int | None = None,
        *,
        method="auto",
        chunk_size: int | None = None,
        output_steps: int | slice | list | None = None,
        tied: bool = False,
    ) -> np.ndarray | dict:
        """Jacobian of probe outputs w.r.t. input Nodes and weights, per item.

        Derivatives are those of the **rate-mode** network that NengoDL trains
        (``training=True``): spiking neurons are replaced by their rate model
        (LIF -> LIFRate, or SoftLIFRate with the ``lif_smoothing`` setting;
        SpikingRectifiedLinear -> RectifiedLinear), in the forward and the backward
        pass. They are exact derivatives of that network, not of the spike trains.

        The simulation starts from the simulator's saved state, as `predict` does, and
        computing a Jacobian leaves the simulator's weights, saved state and probe data
        exactly as they were.

        Parameters
        ----------
        of : nengo.Probe or list of nengo.Probe
            The outputs.
        wrt : input Node, weight, or list of these
            An input Node (``size_in=0``; its values are the data), or a weight as
            accepted by ``sim.weights``: a Connection (its weights), an Ensemble (its
            scaled encoders), ``ens.neurons`` (its biases), an ``(obj, attr)`` tuple or
            a weight name.
        data : dict or numpy.ndarray, optional
            Input values as for `predict`: ``{node: (n_items, n_steps, node.size_out)}``
            or one array if the network has one input Node. Nodes not given produce
            their own output. ``n_items`` must be a multiple of ``minibatch_size``.
        n_steps : int, optional
            Number of steps; taken from ``data`` if not given.
        method : str or nengo_jacobian.engines.Engine
            How to differentiate: ``"auto"`` (default: picks by the request's shape,
            always exact; compiled by XLA where it pays, which is for most
            requests, see `~nengo_jacobian.engines.reverse.xla_pays`), ``"reverse"``
            (vectorized reverse mode), ``"reverse_xla"`` (the same, compiled by XLA:
            faster warm calls where per-operator overhead dominates, slower first
            call),
            ``"forward"`` (JVP lanes, for few inputs and many outputs),
            ``"finite_difference"`` (central differences; inputs and hidden signals
            only; approximate), ``"pfor"`` (TensorFlow's ``tape.jacobian``; only
            for simulators unrolled to ``n_steps`` with ``use_loop=False``) or
            ``"loop"`` (the slow one-row-at-a-time reference).
            The engine used is recorded in ``sim.jacobian_info``.
        chunk_size : int, optional
            Maximum number of Jacobian rows per backward pass (bounds memory); the
            result does not depend on it.
        output_steps : int, slice or list of int, optional
            Only these output steps (numpy indexing, e.g. ``-1`` for the last step,
            ``slice(-10, None)`` for a window): only their rows are computed. An int
            drops the output-step axis.
        tied : bool
            For input Nodes and hidden signals: the derivative w.r.t. the same change
            at every step (the sum over input steps), so ``wrt_shape`` is
            ``(size,)``; e.g. the steady-state gain.

        Returns
        -------
        numpy.ndarray or dict
            For one probe and one ``wrt``: an array of shape
            ``(n_items, n_steps, probe_dims, *wrt_shape)`` where ``wrt_shape`` is
            ``(n_steps, node.size_out)`` for an input Node and the weight's shape for a
            weight. Entry ``[b, t, i, s, j]`` is ∂(probe dim i at step t)/∂(input dim
            j at step s) for item b. For lists, a dict keyed by what was asked:
            ``{wrt: array}``, ``{probe: array}``, or ``{probe: {wrt: array}}``.
            Probes with ``keep_history=False`` have one output step.
        """
        return compute_jacobian(
            self,
            of,
            wrt,
            data,
            n_steps,
            method=method,
            chunk_size=chunk_size,
            output_steps=output_steps,
            tied=tied,
        )

    def labelled_jacobian(
        self,
        of,
        wrt,
        data=None,
        n_steps: int | None = None,
        *,
        method="auto",
        chunk_size: int | None = None,
        output_steps: int | slice | list | None = None,
        tied: bool = False,
    ) -> JacobianResult:
        """`jacobian`, returned as a labelled `~nengo_jacobian.results.JacobianResult`.

        Same arguments and numbers as `jacobian`. The result names every axis
        (``minibatch``, ``time``, ``probe_dim``, ``input_time``, ``input_dim`` or the
        weight's axes), carries coordinates (times in seconds) and the Nengo names of
        probes and weights, converts to xarray, saves to NetCDF / ``.npz``, prints a
        summary and plots itself.

        Returns
        -------
        JacobianResult

        Examples
        --------
        >>> import nengo, numpy as np, nengo_jacobian
        >>> with nengo.Network(seed=0) as net:
        ...     stim = nengo.Node(np.zeros(1), label="stim")
        ...     relu = nengo.RectifiedLinear()
        ...     ens = nengo.Ensemble(5, 1, neuron_type=relu, label="a")
        ...     _ = nengo.Connection(stim, ens, synapse=None)
        ...     out = nengo.Probe(ens, synapse=0.01, label="out")
        >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
        ...     result = sim.labelled_jacobian(out, stim, n_steps=3)
        >>> da = result.to_dataarray()
        >>> da.dims
        ('minibatch', 'time', 'probe_dim', 'input_time', 'input_dim')
        >>> da.coords["time"].values.round(3).tolist()  # seconds, as in sim.trange()
        [0.001, 0.002, 0.003]
        """
        request, blocks, _, squeeze = compute_blocks(
            self,
            of,
            wrt,
            data,
            n_steps,
            method=method,
            chunk_size=chunk_size,
            output_steps=output_steps,
            tied=tied,
        )
        return build_result(self, request, blocks, squeeze)

    def rate_outputs(self, of, data=None, n_steps: int | None = None):
        """Probe outputs of the rate-mode network (what `jacobian` differentiates).

        Like `predict`, but with spiking neurons replaced by their rate model (as
        NengoDL does for training) and without changing the simulator's state or probe
        data. Useful to see the values around which a Jacobian is taken, e.g. a decoded
        estimate after a single step, which a spiking simulation cannot give.

        Parameters
        ----------
        of : nengo.Probe or list of nengo.Probe
            The outputs.
        data, n_steps
            As for `jacobian`.

        Returns
        -------
        numpy.ndarray or dict
            ``(n_items, steps, probe dims)`` (one step with ``keep_history=False``), or
            ``{probe: array}`` for a list.

        Examples
        --------
        >>> import nengo, numpy as np, nengo_jacobian
        >>> with nengo.Network(seed=0) as net:
        ...     stim = nengo.Node(np.zeros(1), label="stim")
        ...     ens = nengo.Ensemble(50, 1, neuron_type=nengo.LIF())
        ...     _ = nengo.Connection(stim, ens, synapse=None)
        ...     out = nengo.Probe(ens, synapse=None)
        >>> x = np.array([[[-0.5]], [[0.5]]])  # two items, one step
        >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
        ...     y = sim.rate_outputs(out, x)
        >>> y.shape, bool(np.allclose(y[:, 0, 0], [-0.5, 0.5], atol=0.05))
        ((2, 1, 1), True)
        """
        return outputs.rate_outputs(self, of, data, n_steps)

    def vjp(self, of, wrt, cotangents, data=None, n_steps=None) -> np.ndarray:
        """Vector-Jacobian products ``vᵀ · ∂of/∂wrt``, without forming the Jacobian.

        One backward lane per vector and item.

        Parameters
        ----------
        of : nengo.Probe
            The output.
        wrt : input Node, weight or nengo_jacobian.Hidden
            As for `jacobian`.
        cotangents : array_like
            ``(n_items, [K,] steps, probe dims)``: one or ``K`` vectors per item.
        data, n_steps
            As for `jacobian`.

        Returns
        -------
        numpy.ndarray
            ``(n_items, [K,] *wrt_shape)``.

        Examples
        --------
        >>> import nengo, numpy as np, nengo_jacobian
        >>> with nengo.Network(seed=0) as net:
        ...     stim = nengo.Node(np.zeros(2), label="stim")
        ...     relu = nengo.RectifiedLinear()
        ...     ens = nengo.Ensemble(10, 2, neuron_type=relu, label="ens")
        ...     conn = nengo.Connection(ens, ens, synapse=0.01, label="rec")
        ...     _ = nengo.Connection(stim, ens, synapse=None)
        ...     out = nengo.Probe(ens, synapse=None, label="out")

        >>> x = np.full((1, 3, 2), 0.5)
        >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
        ...     v = np.ones((1, 3, 2))                      # one cotangent per item
        ...     vjp = sim.vjp(out, stim, v, x)              # (items, steps, stim dims)
        ...     jac = sim.jacobian(out, stim, x)
        >>> vjp.shape, bool(np.allclose(vjp, jac.sum(axis=(1, 2)), atol=1e-6))
        ((1, 3, 2), True)
        """
        return products.vjp(self, of, wrt, cotangents, data, n_steps)

    def jvp(self, of, wrt, tangents, data=None, n_steps=None) -> np.ndarray:
        """Jacobian-vector products ``∂of/∂wrt · z``, without forming the Jacobian.

        Computed exactly by transposing a vector-Jacobian product (TensorFlow's
        forward mode cannot pass NengoDL's simulation loop), one lane per vector.

        Parameters
        ----------
        of : nengo.Probe
            The output.
        wrt : input Node, weight or nengo_jacobian.Hidden
            As for `jacobian`.
        tangents : array_like
            ``(n_items, [K,] *wrt_shape)``: one or ``K`` directions per item.
        data, n_steps
            As for `jacobian`.

        Returns
        -------
        numpy.ndarray
            ``(n_items, [K,] steps, probe dims)``.

        Examples
        --------
        >>> import nengo, numpy as np, nengo_jacobian
        >>> with nengo.Network(seed=0) as net:
        ...     stim = nengo.Node(np.zeros(2), label="stim")
        ...     relu = nengo.RectifiedLinear()
        ...     ens = nengo.Ensemble(10, 2, neuron_type=relu, label="ens")
        ...     conn = nengo.Connection(ens, ens, synapse=0.01, label="rec")
        ...     _ = nengo.Connection(stim, ens, synapse=None)
        ...     out = nengo.Probe(ens, synapse=None, label="out")

        >>> x = np.full((1, 3, 2), 0.5)
        >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
        ...     z = np.ones((1, 2, 3, 2))                   # K=2 directions per item
        ...     jvp = sim.jvp(out, stim, z, x)  # (items, K, steps, out dims)
        >>> jvp.shape
        (1, 2, 3, 2)
        """
        return products.jvp(self, of, wrt, tangents, data, n_steps)

    def gradients(self, loss_fn, data=None, n_steps=None, *, wrt=None):
        """Value and gradients of a loss, labelled by weight.

        Parameters
        ----------
        loss_fn : callable
            ``loss_fn(run) -> scalar tf.Tensor``, where ``run`` is a
            `~nengo_jacobian.training.Run`: ``run[probe]`` is a probe's output
            ``(n_items, steps, dims)`` in rate mode, ``run.jacobian(probe, wrt)`` and
            ``run.vjp(probe, wrt, v)`` are Jacobians and products as tensors (so
            Jacobians can be part of the loss). It is traced by ``tf.function``: use
            TensorFlow operations. Keep one function object per loss (it is cached by
            identity).
        data, n_steps
            As for `jacobian`.
        wrt : weight or list of weights, optional
            Which weights (anything ``sim.weights`` accepts); default: every trainable
            weight; ``[]`` computes the loss value only.

        Returns
        -------
        loss : float
        grads : dict
            ``{weight as given (or WeightEntry): numpy array of the weight's shape}``.

        Examples
        --------
        >>> import nengo, numpy as np, nengo_jacobian
        >>> with nengo.Network(seed=0) as net:
        ...     stim = nengo.Node(np.zeros(2), label="stim")
        ...     relu = nengo.RectifiedLinear()
        ...     ens = nengo.Ensemble(10, 2, neuron_type=relu, label="ens")
        ...     conn = nengo.Connection(ens, ens, synapse=0.01, label="rec")
        ...     _ = nengo.Connection(stim, ens, synapse=None)
        ...     out = nengo.Probe(ens, synapse=None, label="out")

        >>> import tensorflow as tf
        >>> def loss_fn(run):
        ...     return tf.reduce_sum(tf.square(run[out]))
        >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
        ...     x = np.full((1, 3, 2), 0.5)
        ...     loss, grads = sim.gradients(loss_fn, x, wrt=[conn])
        >>> grads[conn].shape
        (2, 10)
        """
        return training.gradients(self, loss_fn, data, n_steps, wrt)

    def train_step(
        self, loss_fn, optimizer, data=None, n_steps=None, *, wrt=None, outputs=None
    ):
        """Apply one step of a ``tf.keras`` optimizer to the chosen weights.

        Only the rows of the chosen weights change, even where NengoDL merged them into
        one variable with others. Afterwards ``sim.data``, ``sim.get_nengo_params`` and
        ``sim.weights`` report the trained values. Keras optimizers bind to the first
        set of variables they update: use one optimizer per ``wrt`` choice.

        Parameters
        ----------
        loss_fn : callable
            See `gradients`.
        optimizer : tf.keras.optimizers.Optimizer
            Any Keras optimizer (SGD, Adam, RMSprop ...).
        data, n_steps
            As for `jacobian`.
        wrt : weight or list of weights, optional
            Which weights to train; default: every trainable weight.
        outputs : list of nengo.Probe, optional
            Also return these probes' rate-mode outputs from the same pass (before
            the step), e.g. for online learning, where the output drives a plant and
            the update uses the error it causes, at the cost of one pass.

        Returns
        -------
        float
            The loss before the step.
        dict
            Only with ``outputs``: ``{probe: (n_items, steps, dims) array}``.

        Examples
        --------
        >>> import nengo, numpy as np, nengo_jacobian
        >>> with nengo.Network(seed=0) as net:
        ...     stim = nengo.Node(np.zeros(2), label="stim")
        ...     relu = nengo.RectifiedLinear()
        ...     ens = nengo.Ensemble(10, 2, neuron_type=relu, label="ens")
        ...     conn = nengo.Connection(ens, ens, synapse=0.01, label="rec")
        ...     _ = nengo.Connection(stim, ens, synapse=None)
        ...     out = nengo.Probe(ens, synapse=None, label="out")

        >>> import tensorflow as tf
        >>> def loss_fn(run):
        ...     return tf.reduce_sum(tf.square(run[out]))
        >>> x = np.full((1, 3, 2), 0.5)
        >>> with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
        ...     optimizer = tf.keras.optimizers.SGD(1e-5)
        ...     first = sim.train_step(loss_fn, optimizer, x, wrt=conn)
        ...     second = sim.train_step(loss_fn, optimizer, x, wrt=conn)
        >>> second < first
        True
        """
        return training.train_step(
            self, loss_fn, optimizer, data, n_steps, wrt, outputs
        )

    def close(self):
        """Close the simulator and drop cached Jacobian graphs."""
        self._jacobian_cache = {}
        super().close()
        self._closed_attrs = list(self._closed_attrs) + [
            "weights",
            "jacobian",
            "labelled_jacobian",
            "rate_outputs",
        ]
