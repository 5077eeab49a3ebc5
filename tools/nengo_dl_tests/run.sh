#!/usr/bin/env bash
# Run a subset of NengoDL 3.6.0's own test suite on a venv, as outside evidence that
# nengo_jacobian._compat does not break NengoDL (issue 7; docs/compatibility.rst).
#
#   tools/nengo_dl_tests/run.sh VENV [pytest arguments]
#   make nengo-dl-tests [VENV_UNDER_TEST=.venv-modern]
#
# The tests are the ones installed with nengo-dl (its sdist ships nengo_dl/tests and
# the wheel built from it keeps them); conftest.py and setup.cfg, which hold the
# Simulator fixture, the command-line options and the pytest settings (xfail_strict,
# ...), come from the same sdist. NengoDL's test plugins and the pytest of its time go
# into a --target folder of their own, so the venv itself is not changed:
#   pytest 7.4 (NengoDL 3.6.0's tests use pytest.warns(None), removed in pytest 8),
#   pytest-rng (the seed and rng fixtures), pytest-allclose (allclose_tolerances),
#   scipy (same version on both stacks, so the same tests run).
# Nengo's own pytest plugin (pytest_nengo) comes with nengo.
# Known, explained failures are marked xfail(strict=True) by compat_plugin.py, so the exit
# status is 0 exactly when every outcome is the documented one.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 VENV [pytest arguments]" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$(cd "$1" && pwd)"
shift
python="$venv/bin/python"
work="$repo/build/nengo-dl-tests/$(basename "$venv")"
sdist_dir="$repo/build/nengo-dl-tests/sdist"

# The subset (chosen to fit CI: a few minutes per stack): the simulator (state,
# minibatches, saving), sim.fit training (feed-forward, recurrent, objectives),
# sim.check_gradients, gradients through neurons and synapses, freezing trained
# parameters back into Nengo, the Converter (Dense, Conv, BatchNormalization, nested
# and Sequential models, firing-rate scaling, synapses) and every synapse test.
SUBSET=(
    test_simulator.py::test_persistent_state
    test_simulator.py::test_minibatch
    test_simulator.py::test_train_ff
    test_simulator.py::test_train_recurrent
    test_simulator.py::test_recurrent_gradients
    test_simulator.py::test_train_objective
    test_simulator.py::test_save_load_params
    test_simulator.py::test_direct_grads
    test_simulator.py::test_check_gradients_error
    test_simulator.py::test_freeze_network
    test_simulator.py::test_inference_only
    test_simulator.py::test_get_nengo_params
    test_neurons.py::test_neuron_gradients
    test_processes.py
    test_converter.py::test_dense
    test_converter.py::test_conv
    test_converter.py::test_activation
    test_converter.py::test_add
    test_converter.py::test_batch_normalization
    test_converter.py::test_sequential
    test_converter.py::test_nested_network
    test_converter.py::test_scale_firing_rates
    test_converter.py::test_synapse
)

mkdir -p "$sdist_dir" "$work"
if [ ! -f "$sdist_dir/nengo-dl-3.6.0/setup.cfg" ]; then
    "$python" -m pip download -q --disable-pip-version-check --no-deps \
        --no-binary :all: -d "$sdist_dir" nengo-dl==3.6.0
    tar -xzf "$sdist_dir/nengo-dl-3.6.0.tar.gz" -C "$sdist_dir"
fi
tools="$work/plugins"
if [ ! -f "$tools/.installed" ]; then
    rm -rf "$tools"
    "$python" -m pip install -q --disable-pip-version-check --no-deps \
        --target "$tools" "pytest==7.4.4" "pytest-rng==1.0.0" \
        "pytest-allclose==1.0.0" "scipy==1.15.3"
    touch "$tools/.installed"
fi
# The run folder: NengoDL's setup.cfg, and its conftest.py as a plugin module (the
# tests live in the venv, outside any folder a conftest.py would apply to); nothing
# else, so that nengo_dl is imported from the venv, not from the unpacked sdist.
run="$work/run"
rm -rf "$run"
mkdir -p "$run"
cp "$sdist_dir/nengo-dl-3.6.0/setup.cfg" "$run/"
cp "$sdist_dir/nengo-dl-3.6.0/conftest.py" "$run/nengo_dl_conftest.py"

# (found without importing nengo_dl, which needs the alias layer first)
tests="$("$python" -c 'import importlib.util, os; print(os.path.join(importlib.util.find_spec("nengo_dl").submodule_search_locations[0], "tests"))')"
# Whole files on the command line (pytest 7 cannot select file::test outside its
# rootdir); compat_plugin.py deselects everything not in NENGO_DL_SUBSET.
paths=()
for name in "${SUBSET[@]}"; do
    file="$tests/${name%%::*}"
    case " ${paths[*]-} " in *" $file "*) ;; *) paths+=("$file") ;; esac
done
export NENGO_DL_SUBSET="${SUBSET[*]}"

cd "$run"
export PYTHONPATH="$tools:$here:$run"
export TF_CPP_MIN_LOG_LEVEL=3
export NENGO_JACOBIAN_COMPAT_FILE="$repo/nengo_jacobian/_compat.py"
set +e
"$python" -m pytest -p compat_plugin -p nengo_dl_conftest -p no:cacheprovider --rootdir "$run" -c "$run/setup.cfg" \
    -q -rfEX --tb=line --junitxml "$work/junit.xml" "${paths[@]}" "$@"
status=$?
set -e
echo "NengoDL subset on $venv: exit $status (junit: $work/junit.xml)"
# pytest's 5 (no tests collected) is a failure too
exit $status
