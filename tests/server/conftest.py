import pytest
import trio

from server_testkit import InlineThreads


@pytest.fixture(autouse=True)
def inline_threads(monkeypatch):
    """Work the server hands to threads (journal writes and fsyncs, reads) runs inline: real
    files, but no real time passes under the MockClock, so the tests are deterministic."""
    threads = InlineThreads()
    monkeypatch.setattr(trio.to_thread, "run_sync", threads.run_sync)
    return threads
