"""Progress bars: NengoDL style, only on a terminal, only when allowed, only if slow."""

import nengo
import nengo_dl
import numpy as np
import pytest

import nengo_jacobian
from nengo_jacobian import progress


class RecordingBar(nengo_dl.utils.ProgressBar):
    """NengoDL's bar, recording what it was asked to show."""

    shown = []

    def start(self, **kwargs):
        RecordingBar.shown.append(self.present)
        return super().start(**kwargs)

    def finish(self, **kwargs):
        RecordingBar.shown.append(f"{self.present} finished at {self.value}")
        return super().finish(**kwargs)


def set_delay(monkeypatch, seconds):
    monkeypatch.setattr(
        progress.Progress.__init__, "__defaults__", (None, None, None, seconds)
    )


@pytest.fixture
def terminal(monkeypatch):
    """Pretend standard output is a terminal and every piece of work is slow."""
    monkeypatch.setattr(progress, "_terminal", lambda: True)
    set_delay(monkeypatch, 0.0)
    monkeypatch.setattr(nengo_dl.utils, "ProgressBar", RecordingBar)
    RecordingBar.shown = []
    return RecordingBar.shown


def small_net():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        ens = nengo.Ensemble(10, 2, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(stim, ens, synapse=None)
        out = nengo.Probe(ens, synapse=0.01)
    return net, stim, out


def test_track_shows_a_nengo_dl_bar_on_a_terminal(terminal):
    assert list(progress.track(range(4), "Training")) == [0, 1, 2, 3]
    assert terminal == ["Training", "Training finished at 4"]


def test_quiet_when_disabled_or_off_a_terminal(terminal, monkeypatch):
    list(progress.track(range(4), "Training", enabled=False))
    monkeypatch.setattr(progress, "_terminal", lambda: False)
    list(progress.track(range(4), "Training"))
    assert terminal == []


def test_quick_work_stays_quiet(terminal, monkeypatch):
    set_delay(monkeypatch, 2.0)
    list(progress.track(range(4), "Training"))  # far below the 2 s delay
    assert terminal == []


@pytest.mark.parametrize("shown", [True, False])
def test_jacobian_follows_the_simulators_progress_bar_setting(terminal, shown):
    net, stim, out = small_net()
    with nengo_jacobian.Simulator(net, progress_bar=False) as sim:
        sim.progress_bar = shown  # as if built with progress_bar=shown
        sim.jacobian(out, stim, n_steps=3, chunk_size=4)  # 6 rows: 2 passes
    assert terminal == (
        ["Computing Jacobian", "Computing Jacobian finished at 2"] if shown else []
    )
