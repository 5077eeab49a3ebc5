"""Labelled results: sim.jacobian's numbers, named axes, exact file round trips."""

import nengo
import numpy as np
import pytest
from conftest import two_layer_net

import nengo_jacobian
from nengo_jacobian.results import JacobianResult


@pytest.fixture(scope="module")
def result_and_arrays():
    net = two_layer_net(n_neurons=12, seed=3)
    with net:
        extra = nengo.Node(np.zeros(3), label="cue")
        nengo.Connection(extra, net.a, transform=np.ones((2, 3)) * 0.1, synapse=None)
        net.spikes = nengo.Probe(net.a.neurons, synapse=0.01, label="a spikes")
    x = {
        net.stim: np.random.RandomState(0).uniform(-1, 1, (2, 6, 2)),
        extra: np.random.RandomState(1).uniform(-1, 1, (2, 6, 3)),
    }
    wrt = [net.stim, extra, net.c_ab, net.a, net.b.neurons]
    with nengo_jacobian.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        result = sim.labelled_jacobian([net.probe, net.spikes], wrt, x)
        arrays = sim.jacobian([net.probe, net.spikes], wrt, x)
        tied = sim.labelled_jacobian(net.probe, net.stim, x, tied=True)
        last = sim.labelled_jacobian(net.probe, net.stim, x, output_steps=-1)
        names = {obj: sim.weights[obj].name for obj in (net.c_ab, net.a)}
    return net, result, arrays, tied, last, names


def test_same_numbers_as_jacobian(result_and_arrays):
    net, result, arrays, *_ = result_and_arrays
    assert len(result) == 10
    for probe in (net.probe, net.spikes):
        for key, values in arrays[probe].items():
            # indexed by the objects asked for, and by names
            np.testing.assert_array_equal(result[probe, key], values)
    np.testing.assert_array_equal(result["out", "stim"], arrays[net.probe][net.stim])
    np.testing.assert_array_equal(
        result["a spikes", "b.neurons.bias"], arrays[net.spikes][net.b.neurons]
    )


def test_axes_and_coordinates(result_and_arrays):
    net, result, _, tied, last, names = result_and_arrays
    da = result.to_dataarray(net.probe, net.stim)
    assert da.dims == ("minibatch", "time", "probe_dim", "input_time", "input_dim")
    np.testing.assert_allclose(da.coords["time"], np.arange(1, 7) * 0.001)
    np.testing.assert_allclose(da.coords["input_time"], np.arange(1, 7) * 0.001)
    assert da.attrs["probe"] == "out" and da.attrs["wrt"] == "stim"
    assert names[net.c_ab] in result.wrts
    weights = result.to_dataarray("out", names[net.c_ab])
    assert weights.dims == ("minibatch", "time", "probe_dim", "post", "pre")
    assert weights.shape[-2:] == (2, 12)  # decoders: (dims, neurons)
    assert weights.attrs["variable"].startswith("TensorGraph")
    enc = result.to_dataarray("out", net.a)
    assert enc.dims[-2:] == ("neuron", "dim")
    assert result.block("out", net.b.neurons).dims[-1] == "neuron"
    assert tied.to_dataarray().dims == ("minibatch", "time", "probe_dim", "input_dim")
    assert last.to_dataarray().dims == (
        "minibatch",
        "probe_dim",
        "input_time",
        "input_dim",
    )


def test_dataset_qualifies_only_clashing_axes(result_and_arrays):
    _, result, *_ = result_and_arrays
    ds = result.to_dataset()
    assert len(ds.data_vars) == 10
    stim = ds["jacobian of out wrt stim"]
    cue = ds["jacobian of out wrt cue"]
    # the two Nodes differ in size: input_dim is qualified by its owner
    assert stim.dims[-1] == "stim:input_dim" and cue.dims[-1] == "cue:input_dim"
    # axes on which every block agrees keep their plain names
    assert stim.dims[:2] == ("minibatch", "time")
    assert stim.attrs["axes"].split(",")[-1] == "input_dim"
    assert "rate-mode" in ds.attrs["derivatives"]


@pytest.mark.parametrize("suffix", [".nc", ".npz"])
def test_file_round_trip_is_exact(result_and_arrays, tmp_path, suffix):
    _, result, *_ = result_and_arrays
    path = tmp_path / f"jacobians{suffix}"
    result.save(path)
    loaded = JacobianResult.load(path)
    assert list(loaded) == list(result)
    for a, b in zip(result.blocks, loaded.blocks):
        assert a.values.dtype == b.values.dtype
        np.testing.assert_array_equal(a.values, b.values)
        assert a.dims == b.dims and a.kind == b.kind
        for d in a.dims:
            np.testing.assert_array_equal(a.coords[d], b.coords[d])
        assert a.attrs == b.attrs
    assert loaded.to_dataset().identical(result.to_dataset())


def test_bad_file_names(result_and_arrays, tmp_path):
    _, result, *_ = result_and_arrays
    with pytest.raises(nengo_jacobian.JacobianError, match=r"\.nc .* or \.npz"):
        result.save(tmp_path / "jacobians.csv")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(nengo_jacobian.JacobianError, match="not written by"):
        JacobianResult.load(tmp_path / "other.npz")


def test_lookup_errors_name_the_choices(result_and_arrays):
    _, result, *_ = result_and_arrays
    with pytest.raises(KeyError, match="'out', 'a spikes'"):
        result["nope", "stim"]
    with pytest.raises(KeyError, match="several probes"):
        result.block(None, "stim")


def test_singular_values_and_summary(result_and_arrays):
    net, result, arrays, *_ = result_and_arrays
    J = arrays[net.probe][net.stim][0].reshape(6 * 2, 6 * 2).astype(np.float64)
    np.testing.assert_allclose(
        result.singular_values("out", "stim"), np.linalg.svd(J, compute_uv=False)
    )
    text = result.summary(top=3)
    assert "Probe 'out'" in text and "Probe 'a spikes'" in text
    assert "singular values of d out / d stim" in text
    # weights ordered by norm; the largest single-weight sensitivities are labelled
    norms = result.norms("out")
    biggest = max(norms, key=norms.get)
    first_row = text.split("Probe 'out'")[1].splitlines()[2]
    assert first_row.split()[0] == biggest
    assert "largest sensitivities to single weights" in text


def test_plots(result_and_arrays, tmp_path):
    _, result, *_ = result_and_arrays
    figures = result.plot()
    titles = [
        f._suptitle.get_text() if f._suptitle else f.axes[0].get_title()
        for f in figures
    ]
    assert any("'out' w.r.t. 'stim'" in t for t in titles)
    assert any("'a spikes' to each labelled weight" in t for t in titles)
    paths = result.save_plots(tmp_path)
    assert len(paths) == len(figures) == 2 * 2 + 2  # 2 inputs x 2 probes + 2 bars
    assert all(p.endswith(".png") and (tmp_path / p).exists() for p in paths)
