"""The docs' examples run as written: every ```bash and ```python block of docs/use.md and docs/api.md
preceded by `<!-- runnable -->` is executed, in order, in an empty folder, on the embedded synthetic
data (generated at a tiny size: 1,200/200/200 sentences instead of 16,000/2,000/2,000).

A bash line that is one `duvae ...` command runs in-process (`duvae_cli.cli.main`); any other line
(pipes, redirections, printf) runs in bash, with the `duvae` of this environment on PATH and
`pipefail`, so `duvae ... | head` must itself exit 0. Python blocks run with `exec`. Each block must
succeed; a few lines of the output are checked besides."""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from duvae_cli.prepare import synthetic

DOCS = Path(__file__).resolve().parents[1] / "docs"
MARK = "<!-- runnable -->"
SHELL = set("|&;<>()$`")


def runnable_blocks(page: str) -> list[tuple[str, str]]:
    """(language, code) of every block marked runnable, in page order."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(re.escape(MARK) + r"\n```(bash|python)\n(.*?)\n```", text, flags=re.S)


def bash_lines(code: str) -> list[str]:
    """Logical lines (a trailing backslash continues a line), without blank and comment-only lines."""
    lines = code.replace("\\\n", " ").splitlines()
    return [line for line in lines if line.strip() and not line.strip().startswith("#")]


def in_process(line: str) -> list[str] | None:
    """The arguments of a plain `duvae ...` line (comments dropped), or None when it needs a shell."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>()")
    lexer.whitespace_split, lexer.commenters = True, "#"
    words = list(lexer)
    if words[:1] != ["duvae"] or any(set(w) <= SHELL for w in words):
        return None
    return words[1:]


def run_line(line: str, capsys) -> tuple[int, str, str]:
    from duvae_cli.cli import main

    args = in_process(line)
    if args is None:
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        done = subprocess.run(["bash", "-c", "set -o pipefail; " + line], capture_output=True, text=True,
                              env=env, timeout=300)
        return done.returncode, done.stdout, done.stderr
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def run_page(page: str, workspace: Path, monkeypatch, capsys) -> list[str]:
    """Run every runnable block of `page` in `workspace`; the output of each block."""
    monkeypatch.chdir(workspace)
    monkeypatch.setattr(synthetic, "SyntheticConfig", functools.partial(synthetic.SyntheticConfig,
                                                                        sizes=(1200, 200, 200)))
    outputs = []
    for language, code in runnable_blocks(page):
        if language == "python":
            capsys.readouterr()
            exec(compile(code, str(DOCS / page), "exec"), {"__name__": "__docs__"})
            outputs.append(capsys.readouterr().out)
            continue
        shown = []
        for line in bash_lines(code):
            status, out, err = run_line(line, capsys)
            assert status == 0, f"{page}: `{line}` exited {status}: {err[-2000:]}"
            shown.append(out + err)
        outputs.append("\n".join(shown))
    return outputs


def test_use_md_examples_run_on_the_embedded_data(tmp_path, monkeypatch, capsys):
    outputs = run_page("use.md", tmp_path, monkeypatch, capsys)
    assert len(outputs) == 1 and (tmp_path / "codes.npy").exists() and (tmp_path / "runs/demo/probes").is_dir()
    log = outputs[0]
    assert "warning: oov.txt: 66.67% of the tokens are unknown" in log
    assert re.search(r"^\[#1\] input:  ", log, flags=re.M) and "[#2]" not in log  # `| head -4`: two, then the end
    predictions = [line for line in log.splitlines() if re.fullmatch(r"[0-4]\t[01]\.\d{6}", line)]
    assert len(predictions) == 2  # one line per sentence of new.txt


def test_api_md_examples_run_on_the_embedded_data(tmp_path, monkeypatch, capsys):
    outputs = run_page("api.md", tmp_path, monkeypatch, capsys)
    first = outputs[1].splitlines()
    assert first[0] == "text 2"
    assert first[1] == "(3, 2) (3, 2) 1 of 26 tokens are <unk>"
    assert first[2] == "[{'word': 'never-seen-word', 'count': 1}]"
    assert first[-2] == "True 4" and first[-1] == "True"
    assert outputs[2].splitlines() == ["UnfamiliarInput 0.6667", "texts: 66.67% of the tokens are unknown to the "
                                       "run's vocabulary, above --max-unknown 0.5"]
    assert outputs[3].splitlines()[0] == "0.5" and "du" in outputs[3].splitlines()[1]  # DU's scales: RMS gamma
    assert outputs[5].splitlines()[0].startswith("du gamma=")  # the table of the evaluated run
