from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_opens_with_the_two_commands_and_ci_runs_the_same_tests() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```sh", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2
    run, test = block
    assert run.endswith("seedwatch run")
    test_cmd = test.rsplit("&&", 1)[1].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_cmd in ci
    assert "pip install -q -e '.[test]'" in ci
