"""The Python blocks of docs/*.md and the README's `blindsum dp` and `blindsum params` lines run
as written (seconds in all), so the documentation cannot drift from the code unnoticed."""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

import dp
from transport.cli import main

REPO = Path(__file__).resolve().parents[1]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_strategies_block_runs() -> None:
    (block,) = _python_blocks(REPO / "docs" / "strategies.md")
    ns: dict = {"__name__": "doc"}
    exec(compile(block, "docs/strategies.md", "exec"), ns)
    assert ns["strategy"].strategy.epsilon == 0.0


def test_dp_accounting_block_runs_and_its_comments_hold() -> None:
    (block,) = _python_blocks(REPO / "docs" / "dp_accounting.md")
    ns: dict = {"__name__": "doc"}
    lines = block.strip().splitlines()
    last = lines[-1]
    assert "BudgetExceededError" in last  # the block's last line is documented to raise
    exec(compile("\n".join(lines[:-1]), "docs/dp_accounting.md", "exec"), ns)
    before = ns["acc"].get_epsilon(1e-5)
    with pytest.raises(dp.BudgetExceededError):
        exec(compile(last, "docs/dp_accounting.md", "exec"), ns)
    assert ns["acc"].get_epsilon(1e-5) == before  # "nothing changes"
    # every `expression  # literal` line gives the literal to its printed digits
    checked = 0
    for line in lines:
        code, _, comment = line.partition("#")
        try:
            want = ast.literal_eval(comment.strip())
        except (ValueError, SyntaxError):
            continue
        got = eval(code, ns)
        wants = want if isinstance(want, tuple) else (want,)
        gots = got if isinstance(got, tuple) else (got,)
        for w, g in zip(wants, gots, strict=True):
            digits = len(repr(w).partition(".")[2])
            assert round(g, digits) == w, (line, g)
        checked += 1
    assert checked == 2


@pytest.mark.skipif(importlib.util.find_spec("tenseal") is None, reason="needs the ckks extra")
def test_ckks_block_runs() -> None:
    (block,) = _python_blocks(REPO / "docs" / "ckks.md")
    exec(compile(block, "docs/ckks.md", "exec"), {"__name__": "doc"})


def _readme_commands(prefix: str) -> list[list[str]]:
    out = []
    for line in (REPO / "README.md").read_text().splitlines():
        line = line.strip()
        if line.startswith(prefix) and "..." not in line:
            argv = shlex.split(line.partition("#")[0])
            out.append(argv[1:])  # without "blindsum"
    return out


def test_readme_dp_and_params_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # `dp plan --output plan.png` writes here
    commands = _readme_commands("blindsum dp ") + _readme_commands("blindsum params ")
    assert len(commands) >= 4
    has_plot = importlib.util.find_spec("matplotlib") is not None
    for argv in commands:
        if "--output" in argv and not has_plot:
            continue
        assert main(argv) == 0, argv
        capsys.readouterr()
