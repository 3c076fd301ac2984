"""The floor under any process-per-session sandbox on this machine: forking a warm SymPy image per session,
with no isolation and no messaging, next to the same calls in one long-lived process.

    python -m benchmarks.sandbox_floor [--sessions N] [--calls 10]

The script builds the zygote's image (SymPy and the zygote's preloads imported, its warm-up run, the
collector frozen) and forks two helpers from it. The *worker* runs each session's calls itself, as a
warm pool worker or in-process exec do. The *template* forks a child per session that runs the same
calls and exits: the least any process-per-session design does. Per session the template also forks
(a) a child that exits at once (fork + exit alone) and, as root, (b) one that enters a new PID, user and
mount namespace and loads the sandbox's seccomp filter, then exits (the kernel layers alone). They take
turns session by session; each reports the CPU it took (a child's from wait4, plus the template's own
for the fork) and the child's page faults.

The most a process-per-session sandbox can reach against a single warm worker with every core busy is
P x (worker CPU per call) / (floor CPU per call): the JSON gives it for P = 2 and for the parallelism the
machine gave during the run (`machine_parallel_speedup`, as in sandbox_bench). The sandbox adds its
messaging and isolation on top of that floor. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
from collections.abc import Callable
from typing import Any

from benchmarks.sandbox_bench import exec_snippet, machine_parallel_speedup, make_snippets
from tool_sandbox import isolation, zygote


def build_image() -> None:
    """This process becomes what the zygote is before it forks a session (without its own namespaces)."""
    for name in zygote.PRELOADED_MODULES:
        try:
            __import__(name)
        except ImportError:
            continue
    exec(zygote.WARM_UP, zygote.base_namespace())
    gc.collect()
    gc.freeze()


def own_usage() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000, usage.ru_minflt


def run_calls(codes: list[str]) -> None:
    for code in codes:
        exec_snippet(code)


def in_a_fork(work: Callable[[], None], fork: Callable[[], int] = os.fork) -> dict[str, float]:
    """CPU ms (this process's fork plus the child's whole life) and the child's page faults."""
    before, _ = own_usage()
    pid = fork()
    if pid == 0:
        try:
            work()
        finally:
            os._exit(0)
    after, _ = own_usage()
    _, status, child = os.wait4(pid, 0)
    if status != 0:
        raise RuntimeError(f"a floor child failed (wait status {status})")
    return {"cpu_ms": after - before + (child.ru_utime + child.ru_stime) * 1000, "faults": child.ru_minflt}


def kernel_layers(own_pid_namespace: int, seccomp_program: bytes) -> Callable[[], int]:
    """A fork into a new PID namespace that enters new user and mount namespaces and loads seccomp."""
    def fork() -> int:
        pid = isolation.fork_into_new_pid_namespace(own_pid_namespace)
        if pid == 0:
            try:
                isolation.unshare(isolation.CLONE_NEWNS)
                isolation.unshare(isolation.CLONE_NEWUSER)
                isolation.prctl(isolation.PR_SET_NO_NEW_PRIVS, 1)
                isolation.load_seccomp_program(seccomp_program)
            except BaseException:  # noqa: BLE001 - a child never returns into the caller's code on failure
                os._exit(1)
        return pid
    return fork


def serve(role: str, requests: int, replies: int) -> None:
    """A helper's loop: a JSON list of snippets in, a JSON object of figures out, until EOF."""
    layers_fork = None
    if role == "template" and isolation.running_as_root() and isolation.seccomp_available()[0]:
        layers_fork = kernel_layers(os.open("/proc/self/ns/pid", os.O_RDONLY), isolation.build_seccomp_filter())
        try:
            in_a_fork(lambda: None, layers_fork)
        except (OSError, RuntimeError):
            layers_fork = None  # root without the namespaces (a container's default profile): fork + exit only
    with os.fdopen(requests, "r") as lines, os.fdopen(replies, "w") as out:
        for line in lines:
            codes = json.loads(line)
            if role == "worker":
                before, faults = own_usage()
                run_calls(codes)
                after, faults_after = own_usage()
                figures: dict[str, Any] = {"calls": {"cpu_ms": after - before, "faults": faults_after - faults}}
            else:
                figures = {"calls": in_a_fork(lambda: run_calls(codes)), "bare": in_a_fork(lambda: None)}
                if layers_fork is not None:
                    figures["layers"] = in_a_fork(lambda: None, layers_fork)
            out.write(json.dumps(figures) + "\n")
            out.flush()


def start(role: str) -> tuple[int, Any, Any]:
    helper_reads, parent_writes = os.pipe()
    parent_reads, helper_writes = os.pipe()
    pid = os.fork()
    if pid == 0:
        zygote.close_all_fds_except({0, 1, 2, helper_reads, helper_writes})  # an earlier helper's pipes too
        try:
            serve(role, helper_reads, helper_writes)
        finally:
            os._exit(0)
    os.close(helper_reads)
    os.close(helper_writes)
    return pid, os.fdopen(parent_writes, "w"), os.fdopen(parent_reads, "r")


def summarize(rows: list[dict[str, float]], calls: int = 0) -> dict[str, float]:
    per_session = statistics.mean(r["cpu_ms"] for r in rows)
    per_call = {"cpu_ms_per_call": round(per_session / calls, 3)} if calls else {}
    return {"cpu_ms_per_session": round(per_session, 2), **per_call,
            "faults_per_session": round(statistics.mean(r["faults"] for r in rows))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--calls", type=int, default=10, help="calls per session (sandbox_bench: 10)")
    args = parser.parse_args()
    build_image()
    helpers = {role: start(role) for role in ("worker", "template")}
    snippets = make_snippets(args.sessions * args.calls, seed=5)
    rows: dict[str, list[dict[str, float]]] = {"worker": [], "fork": [], "bare": [], "layers": []}
    for i in range(args.sessions):
        codes = snippets[i * args.calls:(i + 1) * args.calls]
        for role in (("worker", "template") if i % 2 else ("template", "worker")):
            _, send, receive = helpers[role]
            send.write(json.dumps(codes) + "\n")
            send.flush()
            figures = json.loads(receive.readline())
            if role == "worker":
                rows["worker"].append(figures["calls"])
            else:
                rows["fork"].append(figures["calls"])
                rows["bare"].append(figures["bare"])
                if "layers" in figures:
                    rows["layers"].append(figures["layers"])
    for pid, send, receive in helpers.values():
        send.close()
        receive.close()
        os.waitpid(pid, 0)
    worker, fork = summarize(rows["worker"], args.calls), summarize(rows["fork"], args.calls)
    bare = summarize(rows["bare"])
    layers = summarize(rows["layers"]) if rows["layers"] else None
    speedup = machine_parallel_speedup()
    ceiling = worker["cpu_ms_per_call"] / fork["cpu_ms_per_call"]
    bound = {"ceiling_vs_one_warm_worker_2_cores": round(2 * ceiling, 3),
             "ceiling_vs_one_warm_worker_measured_parallelism": round(speedup * ceiling, 3)}
    print(f"{args.sessions} sessions of {args.calls} calls, load {os.getloadavg()[0]:.2f}, parallel speed-up {speedup}x")
    print(f"warm worker      {worker}")
    print(f"fork per session {fork}")
    print(f"fork + exit      {bare}" + (f"\n+ PID/user/mount namespaces and seccomp: {layers}" if layers else ""))
    print(f"process-per-session ceiling vs one warm worker: {bound}")
    print(json.dumps({"bench": "sandbox_floor", "sessions": args.sessions, "calls_per_session": args.calls,
                      "load_avg_1m": round(os.getloadavg()[0], 2), "machine_parallel_speedup": speedup,
                      "warm_worker": worker, "fork_per_session": fork, "fork_and_exit": bare,
                      "fork_exit_with_kernel_layers": layers, **bound}))


if __name__ == "__main__":
    sys.exit(main())
