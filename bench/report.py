"""The benchmark's report: a level's figures from its snapshots, the table, the README snippet.

- :func:`summarise` turns the load generator's result and the bridge's snapshots at the start
  and end of the counted window (wall clock, CPU per thread, the machine's CPU, group-commit
  counters) into one level's figures;
- :func:`print_table` prints every level against the bare commit rate, with the verdict on the
  target and a warning when other work shared the machine;
- :func:`markdown` is the same run as a snippet for README.

Standard library only, like every bench module.
"""

from __future__ import annotations

import os
from typing import Any

TARGET_RATIO = 0.5
#: CPU % (of one core) used by neither the bridge nor the load generator above which a level
#: is flagged: the machine is shared, and another tenant's work lowers every figure.
NOISY_OTHERS_PCT = 25.0


# -- one level's figures -----------------------------------------------------------------------


def summarise(result: dict[str, Any], start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    wall = end["wall"] - start["wall"]
    ok = result["ok"]
    cpu = {k: end["cpu"][k] - start["cpu"][k] for k in ("main", "other", "workers", "total")}
    busy = end["machine"][0] - start["machine"][0]
    total = end["machine"][1] - start["machine"][1]
    result["bridge_cpu"] = {
        "main_thread_pct": 100 * cpu["main"] / wall,
        "other_threads_pct": 100 * cpu["other"] / wall,
        "workers_pct": 100 * cpu["workers"] / wall,
        "ms_per_payment": 1000 * cpu["total"] / ok if ok else None,
        "main_thread_ms_per_payment": 1000 * cpu["main"] / ok if ok else None,
    }
    result["machine_cpu_pct"] = 100 * (os.cpu_count() or 1) * busy / total if total else None
    if result["machine_cpu_pct"] is not None:  # noise: what neither the bridge nor we used
        result["others_cpu_pct"] = max(
            0.0, result["machine_cpu_pct"] - 100 * cpu["total"] / wall - result["client_cpu_pct"]
        )
    c0, c1 = start["counters"], end["counters"]
    if c0 and c1:
        batches = c1["batches"] - c0["batches"]
        writes = c1["batched_writes"] - c0["batched_writes"]
        sizes = {
            int(k): v - c0["sizes"].get(k, 0)
            for k, v in c1["sizes"].items()
            if v - c0["sizes"].get(k, 0) > 0
        }
        window_ns = wall * 1e9
        reads = c1["reads"] - c0["reads"]
        busy_ns = c1["batch_ns"] - c0["batch_ns"] + c1["read_ns"] - c0["read_ns"]
        result["sqlite_thread"] = {
            "busy_pct": 100 * busy_ns / window_ns,
            "batch_ms_mean": (c1["batch_ns"] - c0["batch_ns"]) / 1e6 / batches if batches else None,
            "commit_ms_mean": (
                (c1.get("commit_ns", 0) - c0.get("commit_ns", 0)) / 1e6 / batches
                if batches
                else None
            ),
            "reads_per_payment": reads / ok if ok else None,
            "read_us_mean": (c1["read_ns"] - c0["read_ns"]) / 1e3 / reads if reads else None,
            "read_queue_wait_ms_mean": (c1["read_wait_ns"] - c0["read_wait_ns"]) / 1e6 / reads
            if reads
            else None,
        }
        result["group_commit"] = {
            "batches": batches,
            "writes": writes,
            "mean_batch": writes / batches if batches else None,
            "max_batch": max(sizes) if sizes else None,
            "commits_per_payment": batches / ok if ok else None,
            "writes_per_payment": writes / ok if ok else None,
            "batch_size_histogram": dict(sorted(sizes.items())),
        }
    return result


# -- the table and the README snippet ----------------------------------------------------------


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(report: dict[str, Any]) -> None:
    bare, fs = report["bare"], report["machine"]["filesystem"]
    before, after = bare["before"], bare["after"]
    print()
    print(
        f"bare SQLite commits/s (WAL, synchronous=FULL, {fs['fstype']} at {fs['mount']}):"
        f" before {before['commits_per_s']:.0f}, after {after['commits_per_s']:.0f},"
        f" ratio uses {bare['commits_per_s']:.0f} (commit p50 {before['commit_ms']['p50']:.3f} ms,"
        f" CPU {before['cpu_us_per_commit']:.0f} us per commit)"
    )
    head = (
        f"{'conc':>5} {'pay/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'errors':>6}"
        f" {'commit/pay':>10} {'write/pay':>9} {'batch':>6} {'loop%':>6} {'sqlite%':>7}"
        f" {'workers%':>8}"
        f" {'sqlbusy%':>8} {'cpu ms/pay':>10} {'client%':>7} {'client us/req':>13}"
        f" {'machine%':>8} {'others%':>7}"
    )
    print(head)
    print("-" * len(head))
    for level in report["levels"]:
        gc = level.get("group_commit") or {}
        sql = level.get("sqlite_thread") or {}
        cpu, lat = level["bridge_cpu"], level["latency_ms"]
        print(
            f"{level['concurrency']:>5} {level['payments_per_s']:>8.0f}"
            f" {fmt(lat['p50'], '.2f'):>8} {fmt(lat['p99'], '.2f'):>8}"
            f" {level['ratio']:>6.3f} {level['errors']:>6}"
            f" {fmt(gc.get('commits_per_payment'), '.2f'):>10}"
            f" {fmt(gc.get('writes_per_payment'), '.2f'):>9} {fmt(gc.get('mean_batch'), '.1f'):>6}"
            f" {cpu['main_thread_pct']:>6.0f} {cpu['other_threads_pct']:>7.0f}"
            f" {cpu['workers_pct']:>8.0f}"
            f" {fmt(sql.get('busy_pct'), '.0f'):>8} {fmt(cpu['ms_per_payment'], '.2f'):>10}"
            f" {level['client_cpu_pct']:>7.0f}"
            f" {fmt(level['client_cpu_us_per_request'], '.0f'):>13}"
            f" {fmt(level['machine_cpu_pct'], '.0f'):>8}"
            f" {fmt(level.get('others_cpu_pct'), '.0f'):>7}"
        )
        for sample in level["error_samples"]:
            print(f"      error: {sample}")
    best = report["best"]
    verdict = "MET" if best["target_met"] else "NOT met"
    print(
        f"\nbest: {best['payments_per_s']:.0f} payments/s at concurrency {best['concurrency']}"
        f" = {best['ratio']:.3f} x bare commits/s; target >= {TARGET_RATIO}: {verdict}"
    )
    if report["noisy"]:
        print(
            f"WARNING: other work used > {NOISY_OTHERS_PCT:.0f}% of a core during a level"
            " (others%); these figures understate the bridge: rerun when the machine is quiet."
        )
    print(
        "loop% = CPU of the bridge's event-loop thread, sqlite% = CPU of its other threads (the"
        " SQLite worker), workers% = CPU of its HTTP worker processes, in % of one core;\n"
        "sqlbusy% = wall time in batches (statements, on"
        " the loop), commits and reads (SQLite thread: fsync, GIL waits); commit/pay = fsyncs"
        " per payment;\n"
        "client% = the load generator's CPU; machine% = all processes, out of"
        f" {100 * (os.cpu_count() or 1)}%; others% = machine% - bridge - client (noise:"
        " other\nworkloads on this shared machine; a run with high others% understates the"
        " bridge)."
    )


def markdown(report: dict[str, Any]) -> str:
    m, bare, best = report["machine"], report["bare"], report["best"]
    code = f"commit {report['code']['commit'] or '?'}"
    if report["code"]["uncommitted_files"]:
        code += f" (+{report['code']['uncommitted_files']} uncommitted files in bridge/, drivers/)"
    lines = [
        f"### Durable payment throughput ({report['timestamp'][:10]})",
        "",
        f"`.venv/bin/python -m bench.payments` at {code}, on {m['cpus']} shared cores,"
        f" {m['platform']}, SQLite {m['sqlite_version']}, {m['filesystem']['fstype']}. Bare SQLite"
        f" (WAL, `synchronous=FULL`, one-row commits, same folder): "
        f"**{bare['commits_per_s']:,.0f} commits/s**.",
        "",
        "| concurrency | payments/s | p50 ms | p99 ms | ÷ bare commits/s "
        "| commits per payment | mean batch | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in report["levels"]:
        gc, lat = level.get("group_commit") or {}, level["latency_ms"]
        lines.append(
            f"| {level['concurrency']} | {level['payments_per_s']:,.0f}"
            f" | {fmt(lat['p50'], '.1f')} | {fmt(lat['p99'], '.1f')}"
            f" | {level['ratio']:.3f} | {fmt(gc.get('commits_per_payment'), '.2f')}"
            f" | {fmt(gc.get('mean_batch'), '.1f')} | {level['errors']} |"
        )
    verdict = "met" if best["target_met"] else "**not met**"
    lines += [
        "",
        f"Target payments/s ≥ {TARGET_RATIO} × bare commits/s at the best level:"
        f" {best['ratio']:.3f} at concurrency {best['concurrency']}, {verdict}. Every payment"
        " is fsynced (group commit) before its 2xx.",
    ]
    if report["noisy"]:
        lines.append(
            "Other work shared the machine during this run (see `others_cpu_pct` in the JSON):"
            " the payment figures are understated."
        )
    return "\n".join(lines)
