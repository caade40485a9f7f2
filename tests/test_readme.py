"""The README's first code block is what a new user runs first: it must keep working."""

import re
from pathlib import Path


def test_readme_first_code_block_runs(capsys):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None
    exec(compile(block.group(1), "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "epsilon" in out
