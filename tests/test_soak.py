"""Many triages in one process, and many threads at once (issue 2, 'Done when')."""

from __future__ import annotations

import threading

import pytest

from engine import default_triager
from tests.conftest import load_example

EXAMPLES = ["neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid"]


@pytest.mark.slow
def test_ten_thousand_triages_in_one_process_stay_correct_and_leave_no_live_session():
    t = default_triager()
    patients = [load_example(n) for n in EXAMPLES]
    expected = [t.triage(p).model_dump_json() for p in patients]
    created = t.engine.sessions_created
    for i in range(10_000):
        k = i % len(patients)
        assert t.triage(patients[k]).model_dump_json() == expected[k]
    assert t.engine.live_sessions() == 0
    assert t.engine.sessions_created == created


def test_eight_threads_triaging_at_once_agree_with_serial_results():
    t = default_triager()
    patients = [load_example(n) for n in EXAMPLES] * 40
    serial = [t.triage(p).model_dump_json() for p in patients]
    results: dict[int, list[str]] = {}

    def work(k: int) -> None:
        results[k] = [t.triage(p).model_dump_json() for p in patients]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results) == 8
    assert all(r == serial for r in results.values())
    assert t.engine.live_sessions() == 0


def test_the_shared_examples_in_tests_are_the_shared_examples_as_written():
    """tests/examples is a copy for machines without ../shared; it must not drift."""
    from tests.conftest import LOCAL_EXAMPLES, SHARED_EXAMPLES

    if not SHARED_EXAMPLES.exists():
        import pytest

        pytest.skip("../shared/examples is not beside this checkout")
    for p in SHARED_EXAMPLES.glob("*.json"):
        assert (LOCAL_EXAMPLES / p.name).read_bytes() == p.read_bytes(), p.name
