"""The conformance suite catches broken backends: each deliberately broken SQLite backend below
breaks one invariant, and the suite, run with pytester, must fail exactly there."""

from __future__ import annotations

import textwrap

import pytest

BROKEN_BACKENDS = '''
import msgspec
import pytest

from omniq.testing import BackendConformance
from omniq_sqlite import SQLiteBackend


class DoubleClaim(SQLiteBackend):
    """Hands every claimed task out again to the next claimer."""

    async def claim(self, **kwargs):
        tasks = await super().claim(**kwargs)
        await self.release([(t.id, t.attempt) for t in tasks])
        return tasks


class IgnoresLeaseExpiry(SQLiteBackend):
    """Never recovers the tasks of dead workers."""

    async def requeue_expired(self, *, limit=1000):
        return []


class IgnoresFencing(SQLiteBackend):
    """Applies every outcome, whatever its token."""

    async def finish(self, outcomes):
        current = {t.id: t.attempt for t in await self.get_tasks([o.task_id for o in outcomes]) if t}
        await super().finish(
            [msgspec.structs.replace(o, attempt=current.get(o.task_id, o.attempt)) for o in outcomes]
        )


class NeverPurges(SQLiteBackend):
    """Keeps everything: expired results are only hidden, never deleted."""

    async def purge(self, *, finished_before, events_before, failed_before=None):
        return (0, 0)


class Base(BackendConformance):
    broken = SQLiteBackend

    @pytest.fixture
    def backend_url(self, tmp_path):
        return f"sqlite:///{tmp_path / 'broken.db'}"

    @pytest.fixture
    def omniq_backend_factory(self):
        return lambda url, clock: self.broken.from_url(url, clock=clock)


class TestDoubleClaim(Base):
    broken = DoubleClaim


class TestIgnoresLeaseExpiry(Base):
    broken = IgnoresLeaseExpiry


class TestIgnoresFencing(Base):
    broken = IgnoresFencing


class TestNeverPurges(Base):
    broken = NeverPurges

'''


def broken_suite_outcomes(pytester: pytest.Pytester) -> dict[str, str]:
    """Run the suite on the broken stores; ``{node id: outcome}`` plus the text summary."""
    pytester.makeconftest('pytest_plugins = ["omniq.testing"]')
    pytester.makepyfile(test_broken=textwrap.dedent(BROKEN_BACKENDS))
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        # the invariants these stores break; the healthy SQLite store passes the whole suite in
        # packages/omniq-sqlite/tests/test_conformance.py
        "-k",
        "concurrent_claimers or claim_leases_each or expired_lease or stale_finish"
        " or results_for_good",
        "-q",
        "-rfE",
    )
    text = result.stdout.str()
    outcomes = {"__summary__": text}
    for line in text.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            outcomes[line.split()[1]] = "failed"
    return outcomes


def failed_tests(outcomes: dict[str, str], cls: str) -> set[str]:
    return {
        node.split("::")[-1]
        for node, outcome in outcomes.items()
        if f"::{cls}::" in node and outcome == "failed"
    }


def test_the_suite_fails_each_deliberately_broken_backend(pytester: pytest.Pytester) -> None:
    outcomes = broken_suite_outcomes(pytester)
    summary = outcomes["__summary__"]
    double_claim = failed_tests(outcomes, "TestDoubleClaim")
    assert "test_concurrent_claimers_never_receive_the_same_task" in double_claim, summary
    assert "test_claim_leases_each_due_task_once" in double_claim, summary
    lease_expiry = failed_tests(outcomes, "TestIgnoresLeaseExpiry")
    assert "test_an_expired_lease_is_recovered_and_counted_as_an_attempt" in lease_expiry, summary
    assert "test_an_expired_lease_with_no_runs_left_fails_as_worker_lost" in lease_expiry, summary
    fencing = failed_tests(outcomes, "TestIgnoresFencing")
    assert "test_a_stale_finish_is_rejected_and_writes_nothing" in fencing, summary
    never_purges = failed_tests(outcomes, "TestNeverPurges")
    assert "test_purge_deletes_expired_results_for_good" in never_purges, summary
    # and no test errored: every failure above is an assertion of the suite, not a crash
    assert "ERROR " not in summary, summary
