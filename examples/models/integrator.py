"""A model file for ``nengo-jacobian run``: a spiking integrator.

    nengo-jacobian run examples/models/integrator.py

Its Jacobian w.r.t. the input is close to a lower-triangular block of constants
(an integrator's output moves equally with every past input), which the heatmap shows.
The input Node has no data here: it produces its own (zero) output.
"""

import nengo

n_steps = 60
tau = 0.1

with nengo.Network(seed=1, label="integrator") as model:
    u = nengo.Node([0.0], label="u")
    x = nengo.Ensemble(200, 1, neuron_type=nengo.LIF(), label="x")
    nengo.Connection(u, x, transform=[[tau]], synapse=tau, label="u->x")
    nengo.Connection(x, x, synapse=tau, label="x->x")
    probe = nengo.Probe(x, synapse=0.01, label="x value")
