"""Every example script runs and the main job writes its report."""

import pathlib
import runpy

import pytest

from nengo_jacobian.cli import main

# The robot examples have a fast mode with asserted metrics: test_robot_examples.py.
ROBOT = {"spiking_fk_jacobian_osc", "sobolev_kinematics", "adaptive_force_control"}
ROBOT.add("workspace_manipulability")  # a Dask sweep; fast mode in test_sweep.py
EXAMPLES = [
    p
    for p in sorted((pathlib.Path(__file__).parents[1] / "examples").glob("*.py"))
    if p.stem not in ROBOT
]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path):
    runpy.run_path(str(path), run_name="__main__")


def test_demo_writes_report(tmp_path, capsys):
    assert (
        main(["demo", "--out", str(tmp_path), "--steps", "10", "--neurons", "30"]) == 0
    )
    printed = capsys.readouterr().out
    assert "d out / d stim: shape (1, 10, 2, 10, 2)" in printed
    assert "a->b.weights" in printed and "scaled_encoders" in printed
    for name in ("input_jacobian.png", "weight_sensitivity.png", "jacobians.npz"):
        assert (tmp_path / name).stat().st_size > 1000, name


def test_demo_bad_arguments_exit_non_zero(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--steps", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "nengo-jacobian: error: DataError: n_steps must be at least 1"
    )
    assert "Traceback" not in err
