"""`hq generate-completion` prints a script for every shell it lists (issue 14, item 2)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("shell, marker", [
    ("bash", "complete "),
    ("zsh", "compdef"),
    ("fish", "complete "),
    ("powershell", "Register-ArgumentCompleter -Native -CommandName 'hq'"),
    ("elvish", "set edit:completion:arg-completer[hq] = "),
])
def test_every_listed_shell_gets_a_script(hq_env, shell, marker):
    res = hq_env.run(["generate-completion", shell])
    assert res.returncode == 0, res.stderr
    assert marker in res.stdout
    assert "Traceback" not in res.stderr and "KeyError" not in res.stderr
    if shell in ("powershell", "elvish"):
        # static scripts listing the whole tree, as upstream's
        for words in ("hq;worker", "hq;worker;start", "hq;job;cancel", "hq;output-log"):
            assert f"'{words}'" in res.stdout
        assert "--server-dir" in res.stdout and "--time-limit" in res.stdout


def test_bash_script_registers_a_completion(hq_env):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    script = hq_env.run(["generate-completion", "bash"]).stdout
    path = hq_env.root / "hq.bash"
    path.write_text(script)
    out = subprocess.run([bash, "-c", f"source {path} && complete -p hq"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and "hq" in out.stdout
