"""The ``sandbox`` fixture; the helpers behind it live in tests/helpers.py (import them from there)."""

from __future__ import annotations

import pytest

# conftest.py had these helpers and pytest rewrote their asserts; keep that for the module they moved to.
pytest.register_assert_rewrite("tests.helpers")

from tests.helpers import Sandbox  # noqa: E402
from tests.xdist_order import pytest_xdist_make_scheduler  # noqa: E402, F401 (a hook: costliest files first)


@pytest.fixture
def sandbox(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    pytester.makeini("[pytest]\ndistproc_scenarios = scenarios\n")
    return Sandbox(pytester, monkeypatch)

