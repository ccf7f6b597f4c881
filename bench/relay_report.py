"""``bench/relay.py``'s report: the verdicts on the targets, the table, the README snippet.

Ratios are relay ÷ direct (and NATS-routed ÷ direct) at the same offered load in the same
run. The NATS-routed rows (two relays, the venue held by the other one) are printed when
``entry["nats"]`` is set, i.e. when the bench found a ``nats-server``.

Standard library only, like every bench module.
"""

from __future__ import annotations

import textwrap
from typing import Any

#: Issue 4's targets.
P50_SLACK_MS = 1.0
MIN_THROUGHPUT_RATIO = 0.5
MIN_NATS_THROUGHPUT_RATIO = 0.35
TARGET_RATE = 1000
NO_ERROR_RATE = 4000
TARGET_TUNNELS = 10_000
MAX_TUNNELS_KIB = 1024 * 1024
#: CPU % (of one core) used by none of bridge, relay and generator: flagged above this.
NOISY_OTHERS_PCT = 25.0
PATHS = ("direct", "relay")
KEPT_UP = 0.95


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def compare(entry: dict[str, Any], path: str = "relay") -> dict[str, Any]:
    d, r = entry["direct"], entry.get(path)
    if not r:
        return {}
    d50, r50 = d["latency_ms"]["p50"], r["latency_ms"]["p50"]
    return {
        "p50_ratio": _ratio(r50, d50),
        "p50_extra_ms": r50 - d50 if r50 is not None and d50 is not None else None,
        "p99_ratio": _ratio(r["latency_ms"]["p99"], d["latency_ms"]["p99"]),
        "throughput_ratio": _ratio(r["achieved_per_s"], d["achieved_per_s"]),
    }


def verdicts(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in (report.get("latency") or {}).get("rates", []):
        entry["vs_direct"] = compare(entry)
        entry["nats_vs_direct"] = compare(entry, "nats")
        c = entry["vs_direct"]
        if entry["rate"] == TARGET_RATE:
            out["p50_within_1ms_at_1000"] = (
                c["p50_extra_ms"] is not None and c["p50_extra_ms"] <= P50_SLACK_MS
            )
            out["throughput_ge_half_at_1000"] = (c["throughput_ratio"] or 0) >= MIN_THROUGHPUT_RATIO
            n = entry["nats_vs_direct"]
            out["nats_throughput_ge_035_at_1000"] = (
                None if not n else (n["throughput_ratio"] or 0) >= MIN_NATS_THROUGHPUT_RATIO
            )
        if entry["rate"] == NO_ERROR_RATE:
            # Issue 4's line, as written: no request fails (frp's fail). Whether the path
            # also kept up (≥ 95 % of the offered load answered within the window) is
            # reported beside it: on two shared cores the bridge, the relay and the
            # generator together need more CPU than there is at 4,000/s.
            for path in PATHS:
                out[f"no_errors_at_4000_{path}"] = entry[path]["errors"] == 0
                kept = entry[path]["achieved_per_s"] >= KEPT_UP * entry["rate"]
                out[f"kept_up_at_4000_{path}"] = kept
    for entry in (report.get("capacity") or {}).get("rates", []):
        if entry["rate"] == NO_ERROR_RATE:
            r = entry["canned"]
            out["relay_alone_no_errors_kept_up_at_4000"] = (
                r["errors"] == 0 and r["achieved_per_s"] >= KEPT_UP * entry["rate"]
            )
    idle = report.get("idle")
    if idle:
        rss = idle["rss_after_hold"]["rss_kib"]
        out["idle_tunnels_all_up"] = (
            idle["welcomed"] == idle["tunnels"] and idle["online_after_hold"] == idle["tunnels"]
        )
        per = idle["per_tunnel_kib"] or 0
        idle["projected_10k_mib"] = round(
            (idle["rss_before"]["rss_kib"] + per * TARGET_TUNNELS) / 1024, 1
        )
        out["idle_10k_le_1gib"] = (
            rss <= MAX_TUNNELS_KIB
            if idle["tunnels"] >= TARGET_TUNNELS
            else f"projected only ({idle['projected_10k_mib']} MiB)"
        )
    return out


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _errors(r: dict[str, Any]) -> str:
    if not r["errors"]:
        return "0"
    kinds = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors_by_kind"].items()))
    return f"{r['errors']} ({kinds})"


def print_table(report: dict[str, Any]) -> None:
    latency = report.get("latency")
    if latency:
        print("\n(a) bill fetch, open loop")
        print(
            f"{'offered/s':>9} {'path':<7} {'achieved/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
            f" {'late p99':>8} {'conns':>5} {'bridge%':>7} {'relay%':>6} {'gen%':>5}"
            f" {'irq%':>4} {'steal%':>6} {'others%':>7} {'br ms/req':>9} {'rl ms/req':>9}"
            "  errors"
        )
        for entry in latency["rates"]:
            for path in ("direct", "relay", "nats"):
                r = entry.get(path)
                if not r:
                    if path == "nats":
                        print(f"{entry['rate']:>9} {'nats':<7} {'(not measured)':>10}")
                    continue
                cpu, per = r.get("cpu_pct", {}), r.get("cpu_ms_per_request", {})
                print(
                    f"{entry['rate']:>9} {path:<7} {r['achieved_per_s']:>10.0f}"
                    f" {fmt(r['latency_ms']['p50']):>8} {fmt(r['latency_ms']['p99']):>8}"
                    f" {fmt(r['send_lateness_ms']['p99']):>8} {r['connections_max']:>5}"
                    f" {fmt(cpu.get('bridge'), '.0f'):>7} {fmt(cpu.get('relay'), '.0f'):>6}"
                    f" {fmt(cpu.get('generator'), '.0f'):>5} {fmt(cpu.get('irq'), '.0f'):>4}"
                    f" {fmt(cpu.get('steal'), '.0f'):>6} {fmt(cpu.get('others'), '.0f'):>7}"
                    f" {fmt(per.get('bridge'), '.3f'):>9} {fmt(per.get('relay'), '.3f'):>9}"
                    f"  {_errors(r)}"
                )
            for key, label in (("vs_direct", "relay"), ("nats_vs_direct", "nats")):
                c = entry.get(key)
                if not c:
                    continue
                print(
                    f"{'':>9} {label}/direct: p50 ×{fmt(c['p50_ratio'])}"
                    f" (+{fmt(c['p50_extra_ms'])} ms), p99 ×{fmt(c['p99_ratio'])},"
                    f" throughput ×{fmt(c['throughput_ratio'])}"
                )
            n = (entry.get("nats") or {}).get("cpu_ms_per_request")
            if n:
                print(
                    f"{'':>9} nats CPU ms/request: bridge {fmt(n.get('bridge'), '.3f')},"
                    f" relay B {fmt(n.get('relay'), '.3f')}, relay A {fmt(n.get('front'), '.3f')},"
                    f" nats-server {fmt(n.get('nats'), '.3f')}"
                )
        noisy = max(
            (
                e[p].get("cpu_pct", {}).get("others", 0)
                for e in latency["rates"]
                for p in ("direct", "relay", "nats")
                if e.get(p)
            ),
            default=0,
        )
        if noisy > NOISY_OTHERS_PCT:
            print(
                f"warning: other processes on this machine used up to {noisy:.0f} % of a core"
                " during (a): figures are lower than on a quiet machine"
            )
    capacity = report.get("capacity")
    if capacity:
        print("\n(c) the relay alone: a fake bridge answers every request at once")
        for entry in capacity["rates"]:
            r = entry["canned"]
            cpu, per = r.get("cpu_pct", {}), r.get("cpu_ms_per_request", {})
            print(
                f"{entry['rate']:>9} canned  {r['achieved_per_s']:>10.0f}"
                f" {fmt(r['latency_ms']['p50']):>8} {fmt(r['latency_ms']['p99']):>8}"
                f"  relay {fmt(cpu.get('relay'), '.0f')} % ({fmt(per.get('relay'), '.3f')} ms/req),"
                f" fake bridge {fmt(cpu.get('bridge'), '.0f')} %, generator"
                f" {fmt(cpu.get('generator'), '.0f')} %  errors {_errors(r)}"
            )
    idle = report.get("idle")
    if idle:
        print("\n(b) idle tunnels on one relay")
        print(
            f"tunnels {idle['welcomed']}/{idle['tunnels']} up ({idle['outcomes']}),"
            f" online after {report['settings']['hold']:.0f} s: {idle['online_after_hold']};"
            f" relay RSS {_mib(idle['rss_before'])} → {_mib(idle['rss_connected'])} →"
            f" {_mib(idle['rss_after_hold'])} MiB"
            f" (peak {idle['rss_after_hold']['peak_kib'] / 1024:.1f});"
            f" {idle['per_tunnel_kib']} KiB per tunnel; nofile relay {idle['relay_nofile']}"
        )
    print("\ntargets:", report["targets"])


def _kept(latency: dict[str, Any], t: dict[str, Any]) -> str:
    """Whether the relayed path also kept up at 4,000/s, and how far it fell behind."""
    if t.get("kept_up_at_4000_relay") is None:
        return ""
    if t["kept_up_at_4000_relay"]:
        return "; it kept up (≥ 95 % answered in the window)"
    r = next(e["relay"] for e in latency["rates"] if e["rate"] == NO_ERROR_RATE)
    cpu = r.get("cpu_pct", {})
    return (
        f"; it did not keep up: {r['achieved_per_s']:,.0f}/s answered in the window, the rest"
        f" queued (p50 {fmt(r['latency_ms']['p50'], ',.0f')} ms), with the bridge at"
        f" {fmt(cpu.get('bridge'), '.0f')} %, the relay at {fmt(cpu.get('relay'), '.0f')} % and"
        f" the generator at {fmt(cpu.get('generator'), '.0f')} % of a core"
    )


def _per(entry: dict[str, Any], path: str, process: str) -> float | None:
    return ((entry.get(path) or {}).get("cpu_ms_per_request") or {}).get(process)


def _mib(snapshot: dict[str, int]) -> str:
    return f"{snapshot['rss_kib'] / 1024:.1f}"


def _yes(value: Any) -> str:
    if value is None:
        return "not measured yet"
    if isinstance(value, str):
        return value
    return "**met**" if value else "**not met**"


def markdown(report: dict[str, Any]) -> str:
    m, code, t = report["machine"], report["code"], report["targets"]
    day = report["timestamp"][:10]
    lines = [
        f"### Relay overhead and idle tunnels ({day}, commit {code['commit']})",
        "",
        f"{m['cpus']} shared cores, {m.get('system', m['platform'])}. Bridge, relay and load"
        " generator each run as their own process on 127.0.0.1, so here the relay and the bridge"
        " share the same cores (in production they are on different machines). Open loop:"
        " requests are sent on schedule whatever the answers, and latency runs from each"
        " request's due time, so queueing counts.",
        "",
    ]
    latency = report.get("latency")
    if latency:
        s = report["settings"]
        lines += [
            f"Bill fetch (`GET …/tables/{{n}}/bill`, 999 tables, simulated POS in memory),"
            f" {s['duration']:g} s counted per load after {s['warmup']:g} s warm-up"
            + (
                " (the relay's per-venue rate limit lifted for the run)"
                if latency.get("rate_limit_lifted")
                else ""
            )
            + (
                ". Via 2 relays + NATS: the request reaches relay A, which does not hold the"
                " venue, and is routed over one local `nats-server` to relay B, which holds"
                " the tunnel (both relays joined the NATS server for the whole run):"
                if latency.get("nats")
                else ":"
            ),
            "",
            "| offered/s | path | achieved/s | p50 ms | p99 ms | errors |",
            "|---:|---|---:|---:|---:|---|",
        ]
        for entry in latency["rates"]:
            for path, label in (
                ("direct", "direct"),
                ("relay", "via relay"),
                ("nats", "via 2 relays + NATS"),
            ):
                r = entry.get(path)
                if not r:
                    lines.append(f"| {entry['rate']:,} | {label} | not measured | | | |")
                    continue
                lines.append(
                    f"| {entry['rate']:,} | {label} | {r['achieved_per_s']:,.0f} |"
                    f" {fmt(r['latency_ms']['p50'])} | {fmt(r['latency_ms']['p99'])} |"
                    f" {_errors(r)} |"
                )
        lines += ["", *_cpu_table(latency), ""]
        for entry in latency["rates"]:
            c = entry["vs_direct"]
            lines.append(
                f"- {entry['rate']:,}/s: relay ÷ direct p50 ×{fmt(c['p50_ratio'])}"
                f" (+{fmt(c['p50_extra_ms'])} ms), p99 ×{fmt(c['p99_ratio'])},"
                f" throughput ×{fmt(c['throughput_ratio'])}; CPU per answered request: bridge"
                f" {fmt(_per(entry, 'direct', 'bridge'), '.2f')} ms direct,"
                f" {fmt(_per(entry, 'relay', 'bridge'), '.2f')} ms via relay;"
                f" relay {fmt(_per(entry, 'relay', 'relay'), '.2f')} ms."
            )
            n = entry.get("nats_vs_direct")
            if n:
                lines.append(
                    f"- {entry['rate']:,}/s via 2 relays + NATS: p50 ×{fmt(n['p50_ratio'])}"
                    f" (+{fmt(n['p50_extra_ms'])} ms), throughput ×{fmt(n['throughput_ratio'])};"
                    f" CPU per answered request: bridge {fmt(_per(entry, 'nats', 'bridge'), '.2f')}"
                    f" ms, relay B (holds the tunnel) {fmt(_per(entry, 'nats', 'relay'), '.2f')}"
                    f" ms, relay A {fmt(_per(entry, 'nats', 'front'), '.2f')} ms, nats-server"
                    f" {fmt(_per(entry, 'nats', 'nats'), '.2f')} ms."
                )
        s = report["settings"]
        others = max(
            (
                e[p].get("cpu_pct", {}).get("others", 0)
                for e in latency["rates"]
                for p in (*PATHS, "nats")
                if e.get(p)
            ),
            default=0,
        )
        lines += [
            "",
            f"`unanswered`: no answer {s['drain']:g} s after the last request was sent (the"
            f" generator keeps at most {s['max_connections']} connections; past that, requests"
            " queue in it, inside the latency). Other processes on the machine used up to"
            f" {others:.0f} % of a core during these runs (besides irq/softirq and steal).",
            "",
            "Targets: relay p50 ≤ direct + 1 ms at 1,000/s:"
            f" {_yes(t.get('p50_within_1ms_at_1000'))};"
            f" ≥ 0.5× direct throughput at 1,000/s: {_yes(t.get('throughput_ge_half_at_1000'))};"
            f" NATS-routed ≥ 0.35×: {_yes(t.get('nats_throughput_ge_035_at_1000'))};"
            f" no errors at 4,000/s offered via the relay: {_yes(t.get('no_errors_at_4000_relay'))}"
            f"{_kept(latency, t)}.",
            "",
        ]
    lines += _capacity(report)
    idle = report.get("idle")
    if idle:
        lines += [
            f"Idle tunnels: {idle['welcomed']:,} of {idle['tunnels']:,} fake bridges (real HELLO,"
            f" then idle, answering PINGs every {idle['heartbeat_s']:g} s) on one relay process;"
            f" {idle['online_after_hold']:,} still online after"
            f" {report['settings']['hold']:g} s.",
            "",
            "| tunnels | relay RSS before | connected | after hold | per tunnel |",
            "|---:|---:|---:|---:|---:|",
            f"| {idle['welcomed']:,} | {_mib(idle['rss_before'])} MiB |"
            f" {_mib(idle['rss_connected'])} MiB | {_mib(idle['rss_after_hold'])} MiB |"
            f" {idle['per_tunnel_kib']} KiB |",
            "",
            f"Target: 10,000 idle tunnels in ≤ 1 GiB: {_yes(t.get('idle_10k_le_1gib'))}.",
        ]
    return "\n".join(_wrap(line) for line in lines)


def _capacity(report: dict[str, Any]) -> list[str]:
    """Part (c): the relay with the two cores nearly to itself."""
    capacity = report.get("capacity")
    if not capacity:
        return []
    lines = [
        "The relay alone: the same bill GETs through a relay whose tunnel is held by a fake"
        f" bridge (`bench/idle_tunnels.py`) that answers each at once with a bill the real bridge"
        f" gave ({capacity['answer_bytes']:,} B), so the relay does not share the two cores with"
        " a real bridge as it does above:",
        "",
        "| offered/s | achieved/s | p50 ms | p99 ms | errors | relay CPU | relay ms/request |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    for entry in capacity["rates"]:
        r = entry["canned"]
        lines.append(
            f"| {entry['rate']:,} | {r['achieved_per_s']:,.0f} | {fmt(r['latency_ms']['p50'])} |"
            f" {fmt(r['latency_ms']['p99'])} | {_errors(r)} |"
            f" {fmt(r['cpu_pct'].get('relay'), '.0f')} % |"
            f" {fmt(r['cpu_ms_per_request'].get('relay'), '.2f')} |"
        )
    verdict = report["targets"].get("relay_alone_no_errors_kept_up_at_4000")
    if verdict is not None:
        lines += [
            "",
            "The relay alone kept up at 4,000/s (no errors, ≥ 95 % answered in the window):"
            f" {'yes' if verdict else 'no'}.",
        ]
    lines.append("")
    return lines


def _cpu_table(latency: dict[str, Any]) -> list[str]:
    """CPU ms per answered request of each process, per load and path: on a shared machine
    the figure that other work moves least, so the one to compare across runs."""
    lines = [
        "CPU per answered request, ms:",
        "",
        "| offered/s | path | bridge | relay (B) | relay A | nats-server |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    on_path = {"direct": 1, "relay": 2, "nats": 4}  # processes a request goes through
    for entry in latency["rates"]:
        for path, count in on_path.items():
            if entry.get(path):
                cells = [
                    fmt(_per(entry, path, p), ".2f") if i < count else ""
                    for i, p in enumerate(("bridge", "relay", "front", "nats"))
                ]
                lines.append(f"| {entry['rate']:,} | {path} | " + " | ".join(cells) + " |")
    return lines


def _wrap(line: str, width: int = 95) -> str:
    """Wrap prose lines for README; tables and headings stay on one line."""
    if len(line) <= width or line.startswith(("|", "#")):
        return line
    indent = "  " if line.startswith("- ") else ""
    return textwrap.fill(line, width, subsequent_indent=indent, break_on_hyphens=False)
