# Two commands on a fresh machine with only Python 3.11:
#   make demo   # the main job on the built-in network; writes jacobian-report/
#   make test   # ruff, the docs (warnings as errors), then the whole test suite
# Both create the virtual environment .venv on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check
CONSTRAINTS := requirements/constraints.txt

.PHONY: demo test lint docs bench jax-env env clean env-modern test-modern nengo-dl-tests

# The modern stack (issue 7): TensorFlow 2.20 + tf_keras, numpy 2, Nengo 4.1, in its
# own venv. `make test-modern PYTHON_MODERN=python3.12 VENV_MODERN=.venv-py312` for
# Python 3.12.
PYTHON_MODERN ?= $(PYTHON)
VENV_MODERN ?= .venv-modern
MODERN_CONSTRAINTS := requirements/constraints-modern.txt

env: $(STAMP)

# tensorflow-cpu goes in first and nengo-dl without dependencies: nengo-dl's wheel
# asks for the full `tensorflow`, which would pull a second, newer TensorFlow.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (found %s); set PYTHON=/path/to/python3.11" % sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(CONSTRAINTS) tensorflow-cpu keras numpy
	$(PIP) install -q -c $(CONSTRAINTS) nengo jinja2 packaging progressbar2 \
		"matplotlib>=3.5" xarray netCDF4 "dask[distributed]>=2024.1" \
		"pytest>=7" "ruff>=0.5" "sphinx<8" numpydoc
	$(PIP) install -q --no-deps -c $(CONSTRAINTS) nengo-dl
	$(PIP) install -q --no-deps -e .
	$(BIN)/python -c 'import nengo_jacobian, tensorflow as tf; print("nengo_jacobian", nengo_jacobian.__version__, "on TensorFlow", tf.__version__)'
	touch $(STAMP)

# tf_keras and nengo-dl go in without dependencies: both ask for the full
# `tensorflow` package, which would go in next to tensorflow-cpu. nengo-dl (an sdist)
# is built without build isolation: its build asks for setuptools<64, which does not
# run on Python 3.12 (pkgutil.ImpImporter is gone); its setup.py needs pkg_resources
# (setuptools < 80).
MPIP := $(VENV_MODERN)/bin/python -m pip --disable-pip-version-check
$(VENV_MODERN)/.installed: pyproject.toml $(MODERN_CONSTRAINTS)
	$(PYTHON_MODERN) -m venv $(VENV_MODERN)
	$(MPIP) install -q -c $(MODERN_CONSTRAINTS) tensorflow-cpu numpy
	$(MPIP) install -q --no-deps -c $(MODERN_CONSTRAINTS) tf_keras
	$(MPIP) install -q -c $(MODERN_CONSTRAINTS) nengo jinja2 packaging progressbar2 \
		"matplotlib>=3.5" xarray netCDF4 "dask[distributed]>=2024.1" \
		"pytest>=7" "ruff>=0.5" "sphinx<8" numpydoc
	$(MPIP) install -q "setuptools>=70,<80" wheel
	$(MPIP) install -q --no-deps --no-build-isolation -c $(MODERN_CONSTRAINTS) nengo-dl
	$(MPIP) install -q --no-deps -e .
	$(VENV_MODERN)/bin/python -c 'import nengo_jacobian, tensorflow as tf, numpy, nengo, sys; print("nengo_jacobian", nengo_jacobian.__version__, "on Python", sys.version.split()[0], "TensorFlow", tf.__version__, "(tf.keras:", tf.keras.__name__.split(".")[0] + ")", "numpy", numpy.__version__, "Nengo", nengo.__version__)'
	touch $@

env-modern: $(VENV_MODERN)/.installed

# Our whole suite on the modern stack.
test-modern: $(VENV_MODERN)/.installed
	$(VENV_MODERN)/bin/python -m pytest

# A subset of NengoDL 3.6.0's own tests on an existing venv, known failures marked
# (docs/compatibility.rst): make nengo-dl-tests VENV_UNDER_TEST=.venv-modern
VENV_UNDER_TEST ?= $(VENV)
nengo-dl-tests:
	bash tools/nengo_dl_tests/run.sh $(VENV_UNDER_TEST)

demo: $(STAMP)
	$(BIN)/nengo-jacobian demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(MAKE) docs
	$(BIN)/python -m pytest

# The documentation site; warnings are errors.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/jacobian_speed.py --memory

# Optional: JAX (needs numpy >= 2) in its own venv, for the benchmark's JAX column.
jax-env:
	$(PYTHON) -m venv .venv-jax
	.venv-jax/bin/python -m pip install -q jax jaxlib numpy

clean:
	rm -rf $(VENV) $(VENV_MODERN) .venv-jax jacobian-report docs/_build
