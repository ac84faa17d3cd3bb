"""assert_memory_kind_below against a real worker: the kernel's split at a kill names shmem, a
task's end figure exists and passes under a generous bound, an unknown kind is one clear sentence."""

from __future__ import annotations

import pytest

from tests.pytester_project import oomlab_project

pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]


def test_a_kind_at_the_end_and_at_the_kill(pytester):
    oomlab_project(pytester, "oomlab.scenarios.memory_kinds:app", "256MiB")
    pytester.makepyfile(
        test_kinds="""
        import pytest
        from oomlab.testing.assertions import OomlabAssertionError, assert_memory_kind_below, assert_oom_killed
        from oomlab.scenarios.memory_kinds import anon, shmem

        def test_end(oomlab_worker):
            task = assert_memory_kind_below(anon.delay(16), "1 GiB", kind="anon")
            assert task.memory_kinds
            with pytest.raises(OomlabAssertionError, match="of anon memory end"):
                assert_memory_kind_below(anon.delay(16), "16 MiB", kind="anon")
            with pytest.raises(OomlabAssertionError, match="kind is one of anon, file, shmem"):
                assert_memory_kind_below(anon.delay(1), "1 GiB", kind="swap")

        def test_at_kill(oomlab_worker):
            killed = shmem.delay(320)
            assert_oom_killed(killed)
            with pytest.raises(OomlabAssertionError, match="of shmem memory at kill"):
                assert_memory_kind_below(killed, "64 MiB", kind="shmem", at="at_kill")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly", timeout=150)
    result.assert_outcomes(passed=2)
