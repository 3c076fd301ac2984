"""Ordinary SymPy work and session semantics through the real sandbox (one forked process per session)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tool_sandbox import ExecResult, Sandbox, SandboxError, SandboxLimits, get_default_sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(limits=SandboxLimits(timeout_s=5)) as box:
        yield box


def test_solve_prints_and_last_expression_is_the_result(sandbox: Sandbox) -> None:
    out = sandbox.run("x = symbols('x')\nprint(solve(x**2 - 4, x))\nfactor(x**4 - 1)", "solve")
    assert out.status == "ok", out.error
    assert out.stdout == "[-2, 2]\n"
    assert out.result == "(x - 1)*(x + 1)*(x**2 + 1)"
    assert out.error is None and out.duration_s > 0


def test_simplify_integrate_and_rational_arithmetic_are_exact(sandbox: Sandbox) -> None:
    code = ("from sympy import *\nx = Symbol('x')\n"
            "print(simplify(sin(x)**2 + cos(x)**2))\n"
            "print(integrate(x*exp(-x), (x, 0, oo)))\n"
            "print(Rational(1, 3) + Rational(1, 6))\n"
            "integrate(1/(1 + x**2), x)")
    out = sandbox.run(code, "calculus")
    assert out.stdout.splitlines() == ["1", "1", "1/2"]
    assert out.result == "atan(x)"


def test_variables_persist_within_a_session_like_a_notebook(sandbox: Sandbox) -> None:
    assert sandbox.run("x, y = symbols('x y')\neq = Eq(x + y, 10)", "notebook").status == "ok"
    out = sandbox.run("solve([eq, Eq(x - y, 2)], [x, y])", "notebook")
    assert out.result == "{x: 6, y: 4}"


def test_sessions_do_not_see_each_other(sandbox: Sandbox) -> None:
    sandbox.run("secret_value = 41", "session-a")
    out = sandbox.run("secret_value + 1", "session-b")
    assert out.status == "error"
    assert out.error.startswith("NameError: name 'secret_value' is not defined")
    assert sandbox.run("secret_value + 1", "session-a").result == "42"


def test_closed_session_starts_fresh(sandbox: Sandbox) -> None:
    sandbox.run("kept = 1", "closing")
    sandbox.close_session("closing")
    assert sandbox.run("kept", "closing").status == "error"
    sandbox.close_session("never-opened")  # unknown ids are fine


def test_error_names_type_and_message_first_with_a_short_user_traceback(sandbox: Sandbox) -> None:
    out = sandbox.run("def f(n):\n    return 1 / n\nf(0)", "errors")
    assert out.status == "error"
    first, *rest = out.error.splitlines()
    assert first == "ZeroDivisionError: division by zero"
    assert any('File "<cell' in line for line in rest)
    assert "tool_sandbox" not in out.error and "worker.py" not in out.error


def test_syntax_error_points_at_the_line(sandbox: Sandbox) -> None:
    out = sandbox.run("x = = 2", "syntax")
    assert out.error.splitlines()[0] == "SyntaxError: invalid syntax"
    assert "x = = 2" in out.error


def test_text_for_model_shows_output_then_error_and_truncates() -> None:
    result = ExecResult(stdout="partial\n", error="ValueError: bad", status="error")
    assert result.text_for_model() == "partial\nValueError: bad"
    long = ExecResult(stdout="y" * 5000)
    text = long.text_for_model(max_chars=100)
    assert text.startswith("y" * 100) and "truncated 4900 more characters" in text
    assert "no output" in ExecResult().text_for_model()


def test_default_sandbox_is_shared() -> None:
    assert get_default_sandbox() is get_default_sandbox()


def test_monkeypatching_sympy_does_not_leak_into_another_session(sandbox: Sandbox) -> None:
    sandbox.run("import sympy\nsympy.solve = lambda *args, **kwargs: 'hacked'", "patcher")
    out = sandbox.run("import sympy\nx = sympy.Symbol('x')\nsympy.solve(x**2 - 1, x)", "victim")
    assert out.result == "[-1, 1]"


def test_files_live_in_the_session_scratch_dir(sandbox: Sandbox) -> None:
    assert sandbox.run("open('notes.txt', 'w').write('a = 1')", "writer").status == "ok"
    assert sandbox.run("open('notes.txt').read()", "writer").result == "'a = 1'"
    other = sandbox.run("open('notes.txt').read()", "reader")
    assert other.error.startswith("FileNotFoundError")


def test_soft_timeout_keeps_the_session(sandbox: Sandbox) -> None:
    sandbox.run("kept = 5", "soft")
    assert sandbox.run("while True:\n    pass", "soft", timeout=1).status == "timeout"
    assert sandbox.run("kept", "soft").result == "5"


def test_a_crash_ends_only_its_own_session_and_its_next_call_starts_afresh(sandbox: Sandbox) -> None:
    sandbox.run("bystander_value = 1", "bystander")
    sandbox.run("crasher_value = 1", "crasher")
    killed = sandbox.run("import os\nos._exit(1)", "crasher")
    assert killed.status == "killed" and "variables" in killed.error and "status 1" in killed.error
    assert sandbox.run("bystander_value", "bystander").result == "1"
    after = sandbox.run("crasher_value", "crasher")
    assert after.error.startswith("NameError") and after.notice is None  # the failing call already said so


def test_a_call_that_leaves_a_thread_running_retires_its_session(sandbox: Sandbox) -> None:
    out = sandbox.run("import threading, time\nkept = 1\nthreading.Thread(target=time.sleep, args=(60,)).start()",
                      "threads")
    assert out.status == "ok" and "threads or processes running" in out.notice
    assert sandbox.run("kept", "threads").error.startswith("NameError")


def test_builtins_a_call_replaces_are_put_back_after_it_with_a_notice(sandbox: Sandbox) -> None:
    assert sandbox.run("count = 3", "builtins").ok
    patched = sandbox.run("import builtins\nbuiltins.len = lambda x: -1\nbuiltins.mine = 1\ndel builtins.abs\nlen([1])",
                          "builtins")
    assert patched.result == "-1" and "builtins.len" in patched.notice and "were put back" in patched.notice
    after = sandbox.run("import builtins\n(len([1, 2]), abs(-count), hasattr(builtins, 'mine'))", "builtins")
    assert (after.result, after.notice) == ("(2, 3, False)", None)  # variables kept, builtins the interpreter's


def test_a_patched_sympy_class_is_put_back_and_what_was_cached_through_it_is_forgotten(sandbox: Sandbox) -> None:
    patched = sandbox.run("import sympy\nx = sympy.Symbol('x')\nsympy.Integer.__add__ = lambda a, b: sympy.Integer(42)\n"
                          "kept = sympy.expand((x + 1)**2)", "patch")
    assert "sympy.core.numbers.Integer.__add__" in patched.notice
    after = sandbox.run("(kept, expand((x + 1)**2), Integer(1) + 1)", "patch")
    assert (after.result, after.notice) == ("(x**2 + 2*x + 42, x**2 + 2*x + 1, 2)", None)  # variables stay as made


def test_a_patch_made_later_by_a_function_of_an_earlier_call_is_put_back_too(sandbox: Sandbox) -> None:
    assert sandbox.run("def sabotage():\n    import sympy\n    sympy.Rational.__mul__ = lambda a, b: 0", "later").ok
    assert "Rational.__mul__" in sandbox.run("sabotage()", "later").notice
    assert sandbox.run("Rational(1, 2) * 4", "later").result == "2"


def test_a_library_module_the_session_imported_itself_is_watched_too(sandbox: Sandbox) -> None:
    assert sandbox.run("import sympy.stats as st\nX = st.Die('X', 6)", "imported").ok  # not in the zygote
    patched = sandbox.run("from sympy.stats import rv\nrv.expectation.__code__ = (lambda *a, **k: 42).__code__\n"
                          "st.crv_types.NormalDistribution.pdf = lambda self, x: 0", "imported")
    assert "expectation.__code__" in patched.notice and "NormalDistribution.pdf" in patched.notice
    assert sandbox.run("(st.E(X), st.E(st.Normal('N', 1, 2)))", "imported").result == "(7/2, 1)"


def test_state_that_is_the_sessions_own_stays_without_a_notice(sandbox: Sandbox) -> None:
    calls = [
        "from mpmath import mp\nmp.dps = 30",
        "import sys\nsys.setrecursionlimit(5000)\nsys.set_int_max_str_digits(0)",
        "class Point:\n    def __init__(self, x):\n        self.x = x\n    def __repr__(self):\n        return f'P{self.x}'",
        "from decimal import getcontext\ngetcontext().prec = 40",
        "import sympy.physics.units as u\nS.Catalan.evalf(5)",
        "y = Dummy('y')\nf = Function('f')\ndsolve(f(x).diff(x) - f(x), f(x)) if (x := Symbol('x')) else None",
        "p = Point(3)\np.x = 4",
        "order = [3, 1, 2]\norder.sort()\nroot = {'r': 1}\nroot['r'] = 2\n(order, root)",
        "ask(Q.positive(Symbol('y', positive=True)))",  # Q memoizes its keys in its own dict: no change of ours
        "def g(a=1):\n    return a\ng.__defaults__ = (2,)\ng.__code__ = (lambda a=1: a + 1).__code__\n(vars(p), getattr(p, 'x'), g())",
        "(str(mp.pi)[:32], len(str(7**9000)), p, str(u.convert_to(2*u.kilometer, u.meter)))",
    ]
    replies = [sandbox.run(code, "own") for code in calls]
    assert [(r.status, r.notice) for r in replies] == [("ok", None)] * len(calls), [r.text_for_model() for r in replies]
    assert replies[-1].result == "('3.14159265358979323846264338328', 7606, P4, '2000*meter')"


def test_timeouts_still_stop_a_call_after_one_ignored_and_blocked_their_signals(sandbox: Sandbox) -> None:
    disarm = ("import signal\nkept = 7\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
              "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGXCPU})")
    assert "SIGALRM" in sandbox.run(disarm, "signals").notice
    assert sandbox.run("while True:\n    pass", "signals", timeout=1).status == "timeout"  # soft: the session lives
    assert sandbox.run("kept", "signals").result == "7"


def test_concurrent_calls_from_threads_all_get_their_own_answers(sandbox: Sandbox) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def solve(i: int) -> str | None:
        session = f"thread-{i}"
        sandbox.run(f"n = {i}", session)
        return sandbox.run("x = symbols('x')\nsolve(x - n, x)", session).result

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(solve, range(16))) == [f"[{i}]" for i in range(16)]


def test_every_result_records_the_isolation_level(sandbox: Sandbox) -> None:
    info = sandbox.confinement()
    assert info["isolation"] in ("namespaces+seccomp", "namespaces", "seccomp", "rlimits")
    assert sandbox.run("1", "level").isolation == info["isolation"]
    failed = sandbox.run("import os\nos._exit(3)", "level")
    assert failed.status == "killed" and failed.isolation == info["isolation"]


def test_cpu_time_limit_stops_a_busy_call_before_the_wall_timeout() -> None:
    with Sandbox(limits=SandboxLimits(timeout_s=30, cpu_seconds=1)) as box:
        box.run("kept = 1", "cpu")
        out = box.run("while True:\n    pass", "cpu")
        assert out.status == "timeout" and "CPU-time limit" in out.error
        assert out.duration_s < 10
        assert box.run("kept + 1", "cpu").result == "2"  # stopped in Python: the session lives on


def test_threads_that_first_use_a_new_sandbox_together_all_get_their_answer() -> None:
    """Every row thread of a stage may make the process's first call at once: each waits for the one zygote
    (its start-up message is read once), none hangs on a message another thread took."""
    from concurrent.futures import ThreadPoolExecutor

    with Sandbox(limits=SandboxLimits(timeout_s=5)) as box, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: box.run(f"{i} * 7", f"first-{i}"), range(8)))
    assert [r.result for r in results] == [str(i * 7) for i in range(8)]


def test_the_zygote_outlives_the_thread_that_started_it() -> None:
    """The kernel's parent-death signal follows the forking *thread*: a sandbox first used by a chunk's row
    thread must keep its zygote (and its warm sessions) after that thread has ended."""
    import threading

    made: list[Sandbox] = []

    def first_use() -> None:
        made.append(Sandbox(limits=SandboxLimits(timeout_s=5)))
        made[0].run("1 + 1", "short-lived")

    first = threading.Thread(target=first_use)
    first.start()
    first.join()
    with made[0] as box:
        zygote = box.worker_pids()[0]
        time.sleep(0.3)
        assert box.run("2 + 2", "after").result == "4"
        assert box.worker_pids()[0] == zygote, "the zygote was restarted: it died with its thread"


def test_a_zygote_that_dies_while_starting_is_reported_then_started_afresh() -> None:
    with Sandbox(limits=SandboxLimits(timeout_s=5)) as box:
        box._zygote.process.kill()  # before its start-up message
        with pytest.raises(SandboxError, match="zygote failed to start"):
            box.run("1", "s")
        assert box.run("3 * 3", "s").result == "9"
    with pytest.raises(SandboxError, match="closed"):
        box.run("1", "s")
