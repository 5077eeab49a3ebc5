"""The robot force-control examples in fast mode meet issue 5's acceptance figures.

Each example's ``main(fast=True)`` returns its metrics; thresholds carry a margin over
the values measured with these seeds (see the examples and docs/robotics.rst).
Their wall-clock budgets are measured by ``benchmarks/examples_time.py``, not asserted
here: on a shared CI machine a time says more about the load than about the code.
"""

import pathlib
import runpy

import pytest

EXAMPLES = pathlib.Path(__file__).parents[1] / "examples"


def load(name):
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="example")["main"]


@pytest.mark.slow
def test_spiking_fk_jacobian_drives_osc(tmp_path):
    m = load("spiking_fk_jacobian_osc")(fast=True, out=str(tmp_path))
    assert m["fk_error_median_cm"] <= 0.5
    assert m["jacobian_error_median"] <= 0.10
    assert m["jacobian_error_p95"] <= 0.25
    # (b) network Ĵ, true x
    assert m["network_J_true_x_final_error_max_cm"] <= 1.0
    assert m["network_J_true_x_missed"] == 0
    assert (
        m["network_J_true_x_time_to_2cm_max_s"]
        <= 1.15 * m["analytic_J_time_to_2cm_max_s"]
    )
    assert m["network_J_true_x_deviation_mean_cm"] <= 1.0
    # (c) network Ĵ and network x̂
    assert m["network_J_and_x_final_error_max_cm"] <= 1.5
    # the metric tells a bad Jacobian from a good one
    assert m["wrong_J_deviation_mean_cm"] > 1.0
    assert (tmp_path / "osc_reaches.png").stat().st_size > 20000


@pytest.mark.slow
def test_sobolev_training_improves_the_jacobian(tmp_path):
    m = load("sobolev_kinematics")(fast=True, out=str(tmp_path))
    assert m["jacobian_ratio"] <= 0.7
    assert m["Sobolev_jacobian_median"] <= 0.05
    assert m["Sobolev_fk_median_cm"] <= 0.6
    assert m["Sobolev_deviation_mean_cm"] <= 1.0  # its Ĵ drives OSC well
    assert (tmp_path / "sobolev_training.png").stat().st_size > 20000


@pytest.mark.slow
def test_adaptive_force_control_rejects_the_curl_field(tmp_path):
    m = load("adaptive_force_control")(fast=True, out=str(tmp_path))
    assert m["no_adaptation_missed"] >= 8  # negative control
    assert m["pass_2_missed"] == 0
    assert m["pass_2_deviation_mean_cm"] <= 1.5
    assert m["pass_4_final_error_mean_cm"] <= 2 * m["pass_2_final_error_mean_cm"]
    assert (tmp_path / "adaptive_reaches.png").stat().st_size > 20000
