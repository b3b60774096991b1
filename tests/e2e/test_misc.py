"""`hq doc` and `hq generate-completion`."""

from __future__ import annotations

import os
import subprocess

import pytest

from hqenv import HQ


@pytest.mark.timeout(30)
def test_doc_prints_the_documentation_address(hq_env):
    base = "https://it4innovations.github.io/hyperqueue/v0.27.0/"
    assert hq_env.command(["doc"]).strip() == base
    assert hq_env.command(["doc", "worker"]).strip() == base + "deployment/worker/"
    # aliases name the same page
    assert hq_env.command(["doc", "slurm"]) == hq_env.command(["doc", "autoalloc"])
    assert hq_env.command(["doc", "python"]) == hq_env.command(["doc", "python-api"])
    bad = hq_env.run(["doc", "nonsense"])
    assert bad.returncode == 2 and "nonsense" in bad.stderr


@pytest.mark.timeout(30)
def test_generated_bash_completion_completes_commands(hq_env):
    res = hq_env.run(["generate-completion", "bash"])
    assert res.returncode == 0
    assert "_HQ_COMPLETE" in res.stdout and "complete " in res.stdout
    assert res.stderr.strip()  # the notice goes to stderr, the script alone to stdout
    # what the script asks `hq` for when completing `hq jo<TAB>` and `hq job li<TAB>`
    env = dict(os.environ, _HQ_COMPLETE="bash_complete")
    for words, cword, expected in (("hq jo", "1", {"job", "journal"}),
                                   ("hq job li", "2", {"list"})):
        out = subprocess.run(HQ, capture_output=True, text=True, timeout=30,
                             env=dict(env, COMP_WORDS=words, COMP_CWORD=cword))
        assert out.returncode == 0, out.stderr
        assert {line.split(",", 1)[1] for line in out.stdout.split()} == expected
    for shell in ("zsh", "fish"):
        assert hq_env.run(["generate-completion", shell]).returncode == 0
    # every shell the command lists gets a script (issue 14: PowerShell used to be refused)
    assert hq_env.run(["generate-completion", "powershell"]).returncode == 0
