"""`hq doc` and `hq generate-completion`."""

from __future__ import annotations

import sys

from ..version import __version__
from .flavour import click

DOC_BASE = "https://it4innovations.github.io/hyperqueue"
# page -> path in the documentation site; aliases as upstream accepts them
DOC_PAGES = {
    "job": "jobs/jobs/",
    "taskarray": "jobs/arrays/",
    "resources": "jobs/resources/",
    "worker": "deployment/worker/",
    "autoalloc": "deployment/allocation/",
    "python-api": "python/",
    "cheatsheet": "cheatsheet/",
    "changelog": "changelog/",
    "faq": "faq/",
}
DOC_ALIASES = {"jobs": "job", "tasks": "job", "workers": "worker", "pbs": "autoalloc",
               "slurm": "autoalloc", "python": "python-api"}


def doc_url(page: str | None) -> str:
    base = f"{DOC_BASE}/v{__version__}/"
    if page is None:
        return base
    return base + DOC_PAGES[DOC_ALIASES.get(page, page)]


@click.command()
@click.argument("page", required=False,
                type=click.Choice(list(DOC_PAGES) + list(DOC_ALIASES)))
@click.option("--open", "open_", is_flag=True, help="Open the page in a web browser")
def doc(page, open_):
    """Print (or open) the address of HyperQueue's documentation."""
    url = doc_url(page)
    click.echo(url)
    if open_:
        import webbrowser

        if not webbrowser.open(url):
            raise click.ClickException("Cannot open a web browser")


SHELLS = ("bash", "elvish", "fish", "powershell", "zsh")


@click.command("generate-completion")
@click.argument("shell", type=click.Choice(SHELLS))
def generate_completion(shell):
    """Print a shell completion script for `hq` (e.g. `hq generate-completion bash > ~/.hq.bash`)."""
    root_ctx = click.get_current_context().find_root()
    if shell in STATIC_GENERATORS:
        # Static scripts from the command tree, shaped as upstream's (clap_complete) ones.
        script = STATIC_GENERATORS[shell](command_tree(root_ctx))
    else:
        from click.shell_completion import get_completion_class

        comp = get_completion_class(shell)(root_ctx.command, {}, "hq", "_HQ_COMPLETE")
        script = comp.source()
    sys.stdout.write(script)
    sys.stdout.flush()
    click.echo(f"Completion script for {shell} printed; {COMPLETION_HINTS[shell]}", err=True)


COMPLETION_HINTS = {
    "bash": "source it from ~/.bashrc",
    "zsh": "source it from ~/.zshrc",
    "fish": "save it as ~/.config/fish/completions/hq.fish",
    "powershell": "dot-source it from your PowerShell profile ($PROFILE)",
    "elvish": "save it as ~/.config/elvish/lib/hq.elv and `use hq` in rc.elv",
}


def command_tree(ctx) -> list[tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]]:
    """Every command path of the tree under `ctx` with its options and subcommands:
    `[(path words, [(option, help)], [(subcommand, help)]), ...]`, depth first."""
    out = []

    def first_line(text) -> str:
        return (text or "").strip().split("\n")[0].strip()

    def walk(cmd, path, parent):
        sub_ctx = click.Context(cmd, info_name=path[-1], parent=parent)
        options = []
        for p in cmd.get_params(sub_ctx):
            if isinstance(p, click.Option) and not p.hidden:
                for name in [*p.opts, *p.secondary_opts]:
                    options.append((name, first_line(p.help)))
        subs = []
        children = []
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(sub_ctx):
                child = cmd.get_command(sub_ctx, name)
                if child is None or getattr(child, "hidden", False):
                    continue
                subs.append((name, first_line(child.get_short_help_str(200))))
                children.append((child, name))
        out.append((path, options, subs))
        for child, name in children:
            walk(child, path + [name], sub_ctx)

    walk(ctx.command, ["hq"], None)
    return out


def _ps_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def powershell_script(tree) -> str:
    lines = [
        "",
        "using namespace System.Management.Automation",
        "using namespace System.Management.Automation.Language",
        "",
        "Register-ArgumentCompleter -Native -CommandName 'hq' -ScriptBlock {",
        "    param($wordToComplete, $commandAst, $cursorPosition)",
        "",
        "    $commandElements = $commandAst.CommandElements",
        "    $command = @(",
        "        'hq'",
        "        for ($i = 1; $i -lt $commandElements.Count; $i++) {",
        "            $element = $commandElements[$i]",
        "            if ($element -isnot [StringConstantExpressionAst] -or",
        "                $element.StringConstantType -ne [StringConstantType]::BareWord -or",
        "                $element.Value.StartsWith('-') -or",
        "                $element.Value -eq $wordToComplete) {",
        "                break",
        "        }",
        "        $element.Value",
        "    }) -join ';'",
        "",
        "    $completions = @(switch ($command) {",
    ]
    for path, options, subs in tree:
        lines.append(f"        {_ps_quote(';'.join(path))} {{")
        for name, help_ in options:
            lines.append(f"            [CompletionResult]::new({_ps_quote(name)}, "
                         f"{_ps_quote(name)}, [CompletionResultType]::ParameterName, "
                         f"{_ps_quote(help_ or name)})")
        for name, help_ in subs:
            lines.append(f"            [CompletionResult]::new({_ps_quote(name)}, "
                         f"{_ps_quote(name)}, [CompletionResultType]::ParameterValue, "
                         f"{_ps_quote(help_ or name)})")
        lines += ["            break", "        }"]
    lines += [
        "    })",
        "",
        "    $completions.Where{ $_.CompletionText -like \"$wordToComplete*\" } |",
        "        Sort-Object -Property ListItemText",
        "}",
        "",
    ]
    return "\n".join(lines)


def _elv_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def elvish_script(tree) -> str:
    lines = [
        "",
        "use builtin;",
        "use str;",
        "",
        "set edit:completion:arg-completer[hq] = {|@words|",
        "    fn spaces {|n|",
        "        builtin:repeat $n ' ' | str:join ''",
        "    }",
        "    fn cand {|text desc|",
        "        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc",
        "    }",
        "    var command = 'hq'",
        "    for word $words[1..-1] {",
        "        if (str:has-prefix $word '-') {",
        "            break",
        "        }",
        "        set command = $command';'$word",
        "    }",
        "    var completions = [",
    ]
    for path, options, subs in tree:
        lines.append(f"        &{_elv_quote(';'.join(path))}= {{")
        for name, help_ in options + subs:
            lines.append(f"            cand {name} {_elv_quote(help_ or name)}")
        lines.append("        }")
    lines += [
        "    ]",
        "    $completions[$command]",
        "}",
        "",
    ]
    return "\n".join(lines)


STATIC_GENERATORS = {"powershell": powershell_script, "elvish": elvish_script}
