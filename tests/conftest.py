"""Root pytest configuration: registers the real-service fixtures and the CI no-skip rule."""

from __future__ import annotations

import pytest

from tests.support.services import IN_CI

pytest_plugins = [
    "tests.fixtures.pki",
    "tests.fixtures.smtp",
    "tests.fixtures.bind",
    "tests.fixtures.ldap",
    "tests.fixtures.hapi",
    "tests.fixtures.postgres",
    "tests.fixtures.browser",
    "tests.fixtures.java_ri",
    "tests.fixtures.openemr",
]

_skipped_services: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "service" in report.keywords:
        _skipped_services.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped real-service test fails the run: a green run must have used the real peers."""
    if IN_CI and _skipped_services:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line(
                f"FAIL: {len(_skipped_services)} real-service test(s) skipped in CI:", red=True
            )
            for nodeid in _skipped_services:
                reporter.write_line(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
