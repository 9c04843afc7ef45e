"""CI tests the installed package (a wheel built from setup.py), not the source tree next to the tests."""

import os
from pathlib import Path

import pytest

import recbole_dreamrec


def test_ci_imports_the_installed_package():
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("CI=true only: a source checkout tests its own tree")
    package = Path(recbole_dreamrec.__file__).resolve().parent
    assert package.parent.name in ("site-packages", "dist-packages"), package
    assert (package / "properties" / "model" / "DreamRec.yaml").is_file()  # package data installed with it
