"""The hostile/broken snippet corpus (tests/sandbox_attacks/*.py): each is contained, ends with the expected
status, leaks nothing it must not, and the next ordinary call in the same session works."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tool_sandbox import Sandbox, SandboxLimits

CORPUS_DIR = Path(__file__).parent / "sandbox_attacks"
PROJECT_DIR = Path(__file__).resolve().parent.parent
CANARY = "sk-SANDBOX_CANARY-do-not-leak"
ESCAPE_FILES = ("/tmp/tool_sandbox_escape.txt", "/tmp/tool_sandbox_pwned")
FOLLOW_UP = "from sympy import *\nx = symbols('x')\nsolve(x**2 - 9, x)"


@dataclass(frozen=True)
class Attack:
    name: str
    code: str
    expect: str
    says: str | None
    never: str | None


def load_corpus() -> list[Attack]:
    attacks = []
    for path in sorted(CORPUS_DIR.glob("*.py")):
        text = path.read_text().replace("__PROJECT_DIR__", str(PROJECT_DIR))
        header = dict(line[2:].split(": ", 1) for line in text.splitlines() if line.startswith("# ") and ": " in line
                      and line[2:].split(": ", 1)[0] in ("expect", "says", "never"))
        attacks.append(Attack(path.stem, text, header["expect"], header.get("says"), header.get("never")))
    return attacks


CORPUS = load_corpus()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_API_KEY", CANARY)  # must not reach user code
        with Sandbox(pool_size=2, limits=SandboxLimits(timeout_s=1.5, memory_bytes=512 << 20)) as box:
            yield box


def test_corpus_is_large_and_covers_every_status() -> None:
    assert len(CORPUS) >= 30
    assert {status for a in CORPUS for status in a.expect.split("|")} == {"ok", "error", "timeout", "memory", "killed"}


@pytest.mark.parametrize("attack", CORPUS, ids=lambda a: a.name)
def test_attack_is_contained_and_the_session_still_works(sandbox: Sandbox, attack: Attack) -> None:
    session = f"attack-{attack.name}"
    out = sandbox.run(attack.code, session)
    seen = out.text_for_model(max_chars=100_000)
    # "expect: timeout|ok" with "says: killed|threads running": either outcome, each with its own message
    outcomes = attack.expect.split("|")
    assert out.status in outcomes, seen
    if attack.says:
        assert attack.says.split("|")[outcomes.index(out.status)] in seen
    if attack.never:
        assert attack.never not in seen
    assert CANARY not in seen
    assert len(out.stdout) <= sandbox.limits.max_output_chars + 100
    for path in ESCAPE_FILES:
        assert not os.path.exists(path), f"{attack.name} wrote {path}"
    follow_up = sandbox.run(FOLLOW_UP, session)
    assert (follow_up.status, follow_up.result) == ("ok", "[-3, 3]"), follow_up.text_for_model()
    assert "late output" not in follow_up.stdout


def test_pool_is_whole_after_the_corpus(sandbox: Sandbox) -> None:
    pids = {sandbox.run("import os\nos.getpid()", f"pid-{i}").result for i in range(2 * sandbox.pool_size)}
    assert len(pids) == sandbox.pool_size
