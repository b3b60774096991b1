"""A task graph of many single-task batches (a job file's `[[task]]` list, a Python `Job`) costs
the server per task, not per task times the number of batches: a scheduling pass does not offer
a worker every ready queue when nothing more fits it, and equal templates of one submit share
one template id (a worker is sent and keeps one template, not one per task)."""

import pytest

from core_testkit import R, Env, IntRanges, request, template
from hyperqueue.core import scheduler
from hyperqueue.core.resources import UNIT
from hyperqueue.protocol import messages as m


def many_batches(n: int, req=None, name: str = "graph") -> R.SubmitSpec:
    """`n` single-task batches without dependencies, each with its own (equal) template object,
    as the wire decoder made them before it shared equal templates."""
    batches = [R.BatchSpec(template(req or request(cpus=1)), IntRanges.single(i))
               for i in range(n)]
    return R.SubmitSpec(name, "/submit", batches)


def count_fits(monkeypatch) -> list[int]:
    calls = [0]
    real = scheduler._fits

    def counting(*args, **kw):
        calls[0] += 1
        return real(*args, **kw)

    monkeypatch.setattr(scheduler, "_fits", counting)
    return calls


@pytest.mark.timeout(20)
def test_a_full_worker_is_not_offered_every_remaining_batch(monkeypatch):
    """A fractional prefill leaves less room than a 1-CPU task on a 2-CPU worker: the pass
    stops offering that worker the 2,000 single-task queues (before: one failed fit each)."""
    env = Env()
    w = env.worker(2)
    w.prefill = 2.7  # limit 5.4 CPUs: 5 tasks of 1 CPU, 0.4 CPU of room left
    job = env.submit(many_batches(2000))
    calls = count_fits(monkeypatch)
    assert env.schedule() == 5
    assert [t.id for t in env.out.take_worker_msgs(w)] == [0, 1, 2, 3, 4]  # batch order
    assert w.load["cpus"] == 5 * UNIT
    assert calls[0] < 50, calls[0]
    calls[0] = 0
    assert env.schedule() == 0  # nothing fits: the pass ends at once
    assert calls[0] < 10, calls[0]
    assert len(env.core.queue_keys) == 1995
    env.start(w, [job.tasks[0], job.tasks[1]])
    env.finish(w, [job.tasks[0], job.tasks[1]])
    n = env.schedule()  # room again: the next batches, in order
    assert n >= 1
    assert [t.id for t in env.out.take_worker_msgs(w)] == list(range(5, 5 + n))
    env.check()


@pytest.mark.timeout(20)
def test_a_smaller_task_after_many_batches_still_takes_the_room_left():
    """The room left (0.4 CPU) is still offered while some ready task needs no more: the
    0.25-CPU task of a later job is placed in the same pass, after the 1-CPU ones."""
    env = Env()
    w = env.worker(2)
    w.prefill = 2.7
    big = env.submit(many_batches(500))
    small = env.submit(many_batches(1, request(cpus=0.25), name="small"))
    assert env.schedule() == 6
    got = env.out.take_worker_msgs(w)
    assert [(t.job, t.id) for t in got] == [(big, i) for i in range(5)] + [(small, 0)]
    assert env.core.least_cpus_needed() == UNIT  # only 1-CPU queues are left
    env.check()


def test_equal_templates_of_a_submit_share_one_template_id():
    t1 = template(request(cpus=1))
    t2 = template(request(cpus=2))
    spec = R.SubmitSpec("g", "/submit", [R.BatchSpec(t, IntRanges.single(i))
                                         for i, t in enumerate([t1, t1, t2, t1])])
    env = Env()
    job = env.submit(spec)
    ids = [b.template_id for b in job.batches]
    assert ids[0] == ids[1] and len({ids[1], ids[2], ids[3]}) == 3
    assert [b.index for b in job.batches] == [0, 1, 2, 3]  # still one batch per task
    again = env.submit(R.SubmitSpec("h", "/submit", [R.BatchSpec(t1, IntRanges.single(0))]))
    assert again.batches[0].template_id not in ids  # never across submits
    env.check()


def test_the_decoder_shares_templates_equal_on_the_wire_only():
    t = template(request(cpus=1))
    other = template(request(cpus=1), priority=3)
    batches = [[t, "0", None, []], [t, "1", None, [0]], [other, "2", None, []],
               [t, "3", None, []], [t, "4", None, []]]
    msg = m.decode(m.encode(m.SubmitRequest("g", None, "/s", None, batches)), m.FROM_CLIENT)
    got = [b[0] for b in msg.batches]
    assert got[0] is got[1] and got[3] is got[4]
    assert got[2] is not got[1] and got[3] is not got[0]  # only consecutive equal ones
    assert got[2].priority == 3 and got[1].priority == 0
    assert [b[1:] for b in msg.batches] == [["0", None, []], ["1", None, [0]], ["2", None, []],
                                            ["3", None, []], ["4", None, []]]
    assert [x.to_wire() for x in got] == [t.to_wire(), t.to_wire(), other.to_wire(),
                                         t.to_wire(), t.to_wire()]
