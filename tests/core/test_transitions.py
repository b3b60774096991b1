"""The transition tables are enforced: every task and worker state change goes through one
checked function in the reactor, and an illegal move raises before anything changes."""

import ast
from pathlib import Path

import pytest

from core_testkit import Env, R, TaskState, array_spec, request
from hyperqueue.core.model import TASK_TRANSITIONS, IllegalTransition, WorkerState

PACKAGE = Path(R.__file__).resolve().parent.parent
#: Where `.state` of a task or worker may be assigned: (file, function).
ALLOWED = {("core/model.py", "__init__"), ("core/reactor.py", "_set_state"),
           ("core/reactor.py", "_set_worker_state"),
           # autoalloc queues and allocations: every move there goes through `_move` and its
           # own transition tables (QUEUE_TRANSITIONS, ALLOC_TRANSITIONS)
           ("autoalloc/state.py", "apply")}


def busy_worker(env):
    w = env.worker(1)
    low = env.submit(array_spec("0-1", req=request(cpus=1)))
    env.schedule()
    return w, low, env.out.take_worker_msgs(w, 2)


def test_state_is_assigned_only_by_the_checked_functions():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(), rel)
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    value = node.value
                    for tgt in targets:
                        if (isinstance(tgt, ast.Attribute) and tgt.attr == "state"
                                # (string states: records of the journal report, not the core)
                                and not (isinstance(value, ast.Constant)
                                         and isinstance(value.value, str))
                                and (rel, fn.name) not in ALLOWED):
                            offenders.append(f"{rel}:{node.lineno} in {fn.name}")
    assert offenders == [], "state changed outside the checked functions: " + str(offenders)




def test_illegal_task_transition_raises_and_changes_nothing():
    env = Env()
    w, low, (t0, t1) = busy_worker(env)
    env.start(w, [t0])
    env.finish(w, [t0])
    counts = list(low.counts)
    for bad, target in [(t0, TaskState.RUNNING), (t0, TaskState.WAITING),
                        (t1, TaskState.ASSIGNED)]:
        old = bad.state
        assert target not in TASK_TRANSITIONS[old]
        with pytest.raises(IllegalTransition) as e:
            R._set_state(bad, target)
        assert str(e.value) == (f"task {low.id}@{bad.id}: illegal state change "
                                f"{old.name} -> {target.name}")
        assert bad.state == old
    assert list(low.counts) == counts
    # `assign` goes through the table too: a finished task cannot be handed out again.
    with pytest.raises(IllegalTransition, match="FINISHED -> ASSIGNED"):
        R.assign(t0, w, 0, None)
    assert t0.state == TaskState.FINISHED and t0 not in w.tasks
    env.check()


def test_illegal_worker_transition_raises():
    env = Env()
    w = env.worker(1)
    env.lose(w, WorkerState.HEARTBEAT_LOST)
    with pytest.raises(IllegalTransition, match=f"worker {w.id}: illegal state change "
                                                "HEARTBEAT_LOST -> STOPPED"):
        R._set_worker_state(w, WorkerState.STOPPED)
    assert w.state == WorkerState.HEARTBEAT_LOST
    env.lose(w, WorkerState.STOPPED)  # a second loss is a no-op, not an error
    assert w.state == WorkerState.HEARTBEAT_LOST
