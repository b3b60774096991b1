"""`%{NAME}` placeholders and path resolution (relative cwd to submit dir, stdio to cwd)."""

import pytest

from hyperqueue.core.placeholders import fill, resolve_task_paths, unknown_placeholders


def resolve(cwd, stdout, stderr, **kw):
    args = dict(job_id=3, task_id=14, instance=2, submit_dir="/sub/dir", server_uid="abc")
    args.update(kw)
    return resolve_task_paths(cwd, stdout, stderr, **args)


def test_defaults():
    cwd, out, err = resolve("%{SUBMIT_DIR}", "%{CWD}/job-%{JOB_ID}/%{TASK_ID}.stdout",
                            "%{CWD}/job-%{JOB_ID}/%{TASK_ID}.stderr")
    assert cwd == "/sub/dir"
    assert out == "/sub/dir/job-3/14.stdout"
    assert err == "/sub/dir/job-3/14.stderr"


def test_relative_cwd_is_relative_to_submit_dir():
    cwd, out, err = resolve("work/%{TASK_ID}", "o.txt", None)
    assert cwd == "/sub/dir/work/14"
    # Relative stdout is relative to the task cwd (not to the submit dir).
    assert out == "/sub/dir/work/14/o.txt"
    assert err is None


def test_absolute_cwd_and_absolute_stdio():
    cwd, out, err = resolve("/scratch/%{SERVER_UID}/%{JOB_ID}", "/logs/%{INSTANCE_ID}.out",
                            "%{SUBMIT_DIR}/e")
    assert cwd == "/scratch/abc/3"
    assert out == "/logs/2.out"
    assert err == "/sub/dir/e"


def test_cwd_placeholder_in_stdio_and_normalisation():
    cwd, out, err = resolve("a/../b/./c", "%{CWD}/../x", "../y/%{TASK_ID}")
    assert cwd == "/sub/dir/b/c"
    assert out == "/sub/dir/b/x"
    assert err == "/sub/dir/b/y/14"


def test_unknown_placeholders_stay_as_they_are():
    cwd, out, _ = resolve("%{NOPE}", "%{CWD}/%{HOME}.out", None)
    assert cwd == "/sub/dir/%{NOPE}"
    assert out == "/sub/dir/%{NOPE}/%{HOME}.out"


@pytest.mark.parametrize(
    "text, unknown",
    [
        ("%{JOB_ID}/%{TASK_ID}/%{INSTANCE_ID}/%{SUBMIT_DIR}/%{CWD}/%{SERVER_UID}", []),
        ("plain", []),
        ("%{FOO}-%{JOB_ID}-%{bar}", ["FOO", "bar"]),
        ("%{job_id}", ["job_id"]),
        ("%{UNTERMINATED", []),
        ("%{A}%{B", ["A"]),
        ("%{}", [""]),
    ],
)
def test_unknown_placeholders(text, unknown):
    assert unknown_placeholders(text) == unknown


def test_fill_only_given_values():
    assert fill("%{JOB_ID}-%{TASK_ID}", {"JOB_ID": "1"}) == "1-%{TASK_ID}"
    assert fill("no placeholders", {"JOB_ID": "1"}) == "no placeholders"
    assert fill("%{JOB_ID}%{JOB_ID}", {"JOB_ID": "7"}) == "77"
