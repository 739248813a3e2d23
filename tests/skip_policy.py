"""No skipped tests: a skip counts as a failure unless its reason is one CI accepts.

A skip usually hides something missing (a package, a permission, a compiler) that makes the
suite test less than it claims. tests/conftest.py loads this hook, so a local run and CI
(.ci/run) fail alike. To accept a reason, add a fragment of it to ACCEPTED_SKIP_REASONS with a
comment saying why; today there is none.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

ACCEPTED_SKIP_REASONS: tuple[str, ...] = ()


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _reason(report)
        if not any(accepted in reason for accepted in ACCEPTED_SKIP_REASONS):
            report.outcome = "failed"
            report.longrepr = (f"skipped, and skips fail this suite (tests/skip_policy.py): {reason}")
