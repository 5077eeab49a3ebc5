"""Every public name is in the API reference and has a numpydoc docstring."""

import inspect
import pathlib
import re

import pytest

import nengo_jacobian

API = (pathlib.Path(__file__).parents[1] / "docs" / "api.rst").read_text()
DOCUMENTED = set(re.findall(r"\.\. auto\w+:: ([\w.]+)", API))
MEMBERS = {
    f"{module}.{name.strip()}"
    for module, names in re.findall(
        r"\.\. automodule:: ([\w.]+)\n   :members: ([^\n]+)", API
    )
    for name in names.split(",")
}
MODULES = {"engines", "losses", "progress"}


def public_names():
    for name in nengo_jacobian.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(nengo_jacobian, name)
        if inspect.ismodule(obj):
            for sub in obj.__all__ if hasattr(obj, "__all__") else []:
                yield f"nengo_jacobian.{name}.{sub}", getattr(obj, sub)
        else:
            yield f"nengo_jacobian.{name}", obj
    for name in ("identity_penalty", "frobenius_penalty", "tied_jacobian"):
        yield f"nengo_jacobian.losses.{name}", getattr(nengo_jacobian.losses, name)
    from nengo_jacobian import arms
    from nengo_jacobian.arms.neural import NeuralKinematics

    for name in arms.__all__:
        obj = getattr(arms, name)
        if callable(obj):  # constants (REACH_CENTRE, METHODS) are described in text
            yield f"nengo_jacobian.arms.{name}", obj
    yield "nengo_jacobian.arms.neural.NeuralKinematics", NeuralKinematics
    for name in ("Progress", "track"):
        yield f"nengo_jacobian.progress.{name}", getattr(nengo_jacobian.progress, name)


NAMES = dict(public_names())


@pytest.mark.parametrize("name", sorted(NAMES))
def test_public_name_is_documented(name):
    assert name in DOCUMENTED | MEMBERS, f"{name} is missing from docs/api.rst"
    doc = inspect.getdoc(NAMES[name])
    assert doc and len(doc.splitlines()[0]) > 10, f"{name} has no docstring"


def test_every_module_named_in_the_package_is_covered():
    for module in MODULES:
        assert f"nengo_jacobian.{module}" in DOCUMENTED | {
            m.rsplit(".", 1)[0] for m in DOCUMENTED | MEMBERS
        }
