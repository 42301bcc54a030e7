"""The kit (mmframe.testing, loaded by pytest through its entry point) tests the plugin named here."""

import pytest


@pytest.fixture
def mmframe_plugin():
    return "sstf"  # also in pyproject.toml's [tool.pytest.ini_options]; a fixture works from any rootdir
