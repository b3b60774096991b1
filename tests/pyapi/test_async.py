"""`hyperqueue.AsyncClient` against a real server and worker, under asyncio and trio (anyio's
pytest plugin, parametrised over both backends) and under pytest-trio."""

from __future__ import annotations

import os

import anyio
import pytest

from hyperqueue import AsyncClient, Job
from hyperqueue.client import FailedJobsException

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


async def run_graph(client: AsyncClient, workdir):
    job = Job()
    a = job.program(["bash", "-c", "echo a > a.txt"])
    job.program(["bash", "-c", "cat a.txt > b.txt"], deps=[a])
    submitted = await client.submit(job)
    assert await client.wait_for_jobs([submitted]) is True
    assert (workdir / "b.txt").read_text() == "a\n"
    info = await client.job_info(submitted)
    assert [t["state"] for t in info["tasks"]] == ["finished", "finished"]
    assert info["info"]["name"] == "PyAPI job"
    await client.forget(submitted)
    with pytest.raises(Exception, match=f"^Cannot forget job {submitted.id}. It either"):
        await client.forget(submitted)


@pytest.mark.anyio
async def test_submit_wait_info_forget(cluster, workdir, anyio_backend):
    async with AsyncClient(cluster.server_dir) as client:
        await run_graph(client, workdir)


@pytest.mark.anyio
async def test_failures_cancel_and_concurrent_calls(cluster, workdir, anyio_backend):
    async with AsyncClient(cluster.server_dir) as client:
        job = Job()
        job.program(["bash", "-c", "exit 5"], name="five")
        failing = await client.submit(job)
        slow = Job()
        slow.program(["sleep", "30"])
        slow.program(["sleep", "30"])
        sleeping = await client.submit(slow)
        results = {}

        async def wait_slow():
            results["slow"] = await client.wait_for_jobs([sleeping], raise_on_error=False)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_slow)  # on its own connection: other calls go on meanwhile
            with pytest.raises(FailedJobsException, match="Task five"):
                await client.wait_for_jobs([failing])
            assert await client.wait_for_jobs([failing], raise_on_error=False) is False
            failed = await client.get_failed_tasks(failing)
            assert list(failed) == [0] and failed[0].cwd == str(workdir)
            assert await client.cancel(sleeping) == 2
        assert results == {"slow": False}
        info = await client.job_info(sleeping.id)
        assert info["info"]["task_stats"]["canceled"] == 2


@pytest.mark.anyio
async def test_live_event_stream(cluster, workdir, anyio_backend):
    async with AsyncClient(cluster.server_dir) as client:
        async with client.events() as events:
            job = Job()
            job.program("true")
            submitted = await client.submit(job)
            seen = []
            with anyio.fail_after(20):
                async for event in events:
                    seen.append(event)
                    if event["type"] == "job-completed" and event.get("job") == submitted.id:
                        break
        types = [e["type"] for e in seen]
        assert "job-created" in types and "task-finished" in types
        assert all(isinstance(e["time"], float) for e in seen)
        # the history alone ends by itself
        history = [e async for e in client.events(live=False)]
        assert any(e["type"] == "job-completed" and e.get("job") == submitted.id
                   for e in history)


@pytest.mark.trio
async def test_under_pytest_trio(cluster, workdir):
    client = AsyncClient(cluster.server_dir)
    try:
        await run_graph(client, workdir)
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_unreachable_server(tmp_path, anyio_backend):
    with pytest.raises(Exception, match="No server|not found|Cannot|unreachable"):
        async with AsyncClient(tmp_path / "nothing"):
            pass
    assert not os.path.exists(tmp_path / "nothing" / "hq-current")
