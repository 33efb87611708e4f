"""Merge one benchmark run into bench/results/<date>.{json,md,png}.

Inputs: the peer-comparison JSON (bench/peers/bench.py) and the jobserver-only workloads JSON
(bench/extra.py). The Markdown table carries jobserver's ratio to the best peer of each column
when peers ran in the same run, and the target each figure is held against.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def a_row(peer: dict[str, Any], procs: int, tuned: bool) -> dict[str, Any] | None:
    for r in peer.get("A", []):
        if r.get("procs") == procs and bool(r.get("tuned")) == tuned and "process_jobs_s" in r:
            return r
    return None


def l_row(peer: dict[str, Any], procs: int, tuned: bool) -> dict[str, Any] | None:
    """A run of the long burn-down (bench/peers --long-n), where steady state dominates."""
    for r in peer.get("L", []):
        if r.get("procs") == procs and bool(r.get("tuned")) == tuned and "process_jobs_s" in r:
            return r
    return None


def best(peers: dict[str, Any], fn: Any) -> tuple[str | None, float | None]:
    vals = [(k, fn(p)) for k, p in peers.items() if k != "jobserver"]
    vals = [(k, v) for k, v in vals if v is not None]
    return max(vals, key=lambda kv: kv[1]) if vals else (None, None)


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,.1f}" if isinstance(v, float) else str(v)


def ratio(a: float | None, b: float | None, lower_is_better: bool = False) -> str:
    if not a or not b:
        return "-"
    return f"{(b / a if lower_is_better else a / b):.2f}x"


def markdown(peer_res: dict[str, Any], extra: dict[str, Any]) -> str:
    peers = peer_res.get("peers", {})
    js = peers.get("jobserver", {})
    lines = [
        f"# Benchmark run {peer_res.get('run_id', '')}",
        "",
        f"Machine: {peer_res['machine']['nproc']} cores, load before "
        f"{peer_res['machine']['loadavg_before']}; "
        + peer_res["postgres"]["version"].split(" on ")[0]
        + ", fsync=on, synchronous_commit=on, shared_buffers=256MB.",
        "",
        "## Queue workloads (same cluster, same run)",
        "",
        "| system | bulk enqueue jobs/s | process 1 proc | process 2 procs | process 1 proc "
        "(batching knobs) | latency p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, p in peers.items():
        r1, r2, rt = a_row(p, 1, False), a_row(p, 2, False), a_row(p, 1, True)
        b = p.get("B") or {}
        lines.append(
            f"| {p.get('label', key)} | {fmt((r1 or {}).get('enqueue_jobs_s'))} | "
            f"{fmt((r1 or {}).get('process_jobs_s'))} | {fmt((r2 or {}).get('process_jobs_s'))} | "
            f"{fmt((rt or {}).get('process_jobs_s'))} | {fmt(b.get('p50_ms'))} | "
            f"{fmt(b.get('p99_ms'))} |"
        )
    if js and len(peers) > 1:

        def proc(p: dict[str, Any], n: int, t: bool) -> float | None:
            r = a_row(p, n, t)
            return r["process_jobs_s"] if r else None

        def lat(p: dict[str, Any], k: str) -> float | None:
            return (p.get("B") or {}).get(k)

        j1 = proc(js, 1, False)
        bk, bv = best(peers, lambda p: proc(p, 1, False))
        tk, tv = best(peers, lambda p: proc(p, 1, True))
        ek, ev = best(peers, lambda p: (a_row(p, 1, False) or {}).get("enqueue_jobs_s"))
        lk, lv = best(peers, lambda p: -lat(p, "p50_ms") if lat(p, "p50_ms") else None)
        lines += [
            "",
            "| target | jobserver | best peer | ratio | goal |",
            "| --- | ---: | ---: | ---: | --- |",
            f"| process, 1 proc vs best default | {fmt(j1)} | {fmt(bv)} ({bk}) | "
            f"{ratio(j1, bv)} | >= 1.5x |",
            f"| process, 1 proc vs best with batching knobs | {fmt(j1)} | {fmt(tv)} ({tk}) | "
            f"{ratio(j1, tv)} | >= 1.0x |",
            f"| bulk enqueue (Python API) | "
            f"{fmt((a_row(js, 1, False) or {}).get('enqueue_jobs_s'))} | {fmt(ev)} ({ek}) | "
            f"{ratio((a_row(js, 1, False) or {}).get('enqueue_jobs_s'), ev)} | >= 1.3x |",
            f"| latency p50 ms | {fmt(lat(js, 'p50_ms'))} | {fmt(-lv if lv else None)} ({lk}) "
            f"| {ratio(lat(js, 'p50_ms'), -lv if lv else None, True)} | <= 1.5 ms |",
        ]
    lines += long_lines(peer_res)
    lines += ["", "## jobserver-only workloads", ""]
    rb, rs = extra.get("rest_batch", {}), extra.get("rest_single", {})
    sc, me = extra.get("scale", {}), extra.get("memory", {})
    fa = extra.get("fairness", {})
    wh = extra.get("webhooks", {})
    rd = wh.get("render", {})
    vi = extra.get("video", {})
    lines += [
        "| workload | figure | goal |",
        "| --- | --- | --- |",
        f"| POST /v1/jobs/batch (1,000/request) | {fmt(rb.get('jobs_s'))} jobs/s, "
        f"statuses {rb.get('statuses', rb.get('error'))} | >= 40,000 jobs/s |",
        f"| POST /v1/jobs, {rs.get('clients', 64)} clients ({rs.get('tool', '-')}) | "
        f"{fmt(rs.get('requests_s'))} jobs/s, p50 {fmt(rs.get('p50_ms'))} ms, "
        f"p99 {fmt(rs.get('p99_ms'))} ms, non-2xx {rs.get('non_2xx', rs.get('error'))} | "
        ">= 5,000 jobs/s, p99 <= 25 ms |",
        f"| API RSS after load | {fmt(rs.get('api_rss_mb'))} MB | < 150 MB |",
        f"| burn-down with {fmt(sc.get('finished_rows'))} finished rows | "
        f"{fmt(sc.get('full_jobs_s'))} vs {fmt(sc.get('empty_jobs_s'))} jobs/s empty "
        f"(ratio {fmt(sc.get('ratio'))}) {sc.get('error', '')} | >= 0.8 |",
        f"| burn-down, {fmt(fa.get('queued'))} jobs of 1 / 10 / 100 owners (fair claims) | "
        f"{fmt(fa.get('owners_1_jobs_s'))} / {fmt(fa.get('owners_10_jobs_s'))} / "
        f"{fmt(fa.get('owners_100_jobs_s'))} jobs/s (ratios {fmt(fa.get('ratio_10'))}, "
        f"{fmt(fa.get('ratio_100'))}) {fa.get('error', '')} | >= 0.9 |",
        f"| worker RSS, {fmt(me.get('processed'))} jobs | {fmt(me.get('rss_first_mb'))} MB -> "
        f"{fmt(me.get('rss_last_mb'))} MB ({fmt(me.get('growth_pct'))}%) {me.get('error', '')} "
        "| flat +-10% |",
        f"| webhooks (http.request, loopback sink), {fmt(wh.get('jobs'))} jobs, concurrency "
        f"10 / 100 | {fmt(wh.get('c10_jobs_s'))} / {fmt(wh.get('c100_jobs_s'))} jobs/s "
        f"{wh.get('error', '')} | >= 5,000 jobs/s |",
        f"| rendering added per job: no sources / two PostgreSQL sources | p50 "
        f"{fmt(rd.get('plain_p50_us'))} us, p99 {fmt(rd.get('plain_p99_us'))} us / p50 "
        f"{fmt(rd.get('sources_p50_ms'))} ms, p99 {fmt(rd.get('sources_p99_ms'))} ms | "
        "< 0.2 ms without sources |",
        f"| encode {vi.get('clip', 'video')}: encode() / the same ffmpeg by hand, best of "
        f"{vi.get('runs', '-')} | {fmt(vi.get('encode_seconds'))} s ({fmt(vi.get('encode_fps'))}"
        f" fps) / {fmt(vi.get('by_hand_seconds'))} s ({fmt(vi.get('by_hand_fps'))} fps), ratio "
        f"{fmt(vi.get('ratio'))}, CPU ratio {fmt(vi.get('cpu_ratio'))} {vi.get('error', '')} | "
        "ratio <= 1.05 |",
    ]
    lines += dependencies_lines(extra.get("dependencies"))
    if sc.get("claim_plan"):
        lines += ["", "Claim plan with the finished rows present:", "", "```"]
        lines += sc["claim_plan"] + ["```"]
    return "\n".join(lines) + "\n"


def long_lines(peer_res: dict[str, Any]) -> list[str]:
    """The long burn-down's table and the speed targets held against it (one run's ratios)."""
    peers = peer_res.get("peers", {})
    js = peers.get("jobserver", {})
    n = peer_res.get("params", {}).get("long_n")
    if not js.get("L"):
        return []
    lines = [
        "",
        f"Long burn-down ({fmt(n)} no-op jobs; PostgreSQL's CPU in cores over the run):",
        "",
        "| system | configuration | jobs/s | steady jobs/s | PostgreSQL cores | worker CPU s |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for key, p in peers.items():
        for r in p.get("L", []):
            if "process_jobs_s" not in r:
                continue
            lines.append(
                f"| {p.get('label', key)} | {r.get('worker')}, {r.get('procs')} proc | "
                f"{fmt(r.get('process_jobs_s'))} | {fmt(r.get('steady_jobs_s'))} | "
                f"{fmt(r.get('postgres_cores'))} | {r.get('worker_cpu_s')} |"
            )

    def rate(r: dict[str, Any] | None) -> float | None:
        return r["process_jobs_s"] if r else None

    j1, j2 = rate(l_row(js, 1, False)), rate(l_row(js, 2, False))
    tk, tv = best(peers, lambda p: rate(l_row(p, 1, True)))
    b = js.get("B") or {}
    lk, lv = best(peers, lambda p: -(p.get("B") or {}).get("p50_ms", 1e9) if p.get("B") else None)
    ek, ev = best(peers, lambda p: (a_row(p, 1, False) or {}).get("enqueue_jobs_s"))
    enq = (a_row(js, 1, False) or {}).get("enqueue_jobs_s")
    lines += [
        "",
        "| target | jobserver | against | ratio | goal |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| one worker vs the best peer with its batching knobs (long) | {fmt(j1)} | "
        f"{fmt(tv)} ({tk}) | {ratio(j1, tv)} | >= 2.0x |",
        f"| two worker processes vs one (long) | {fmt(j2)} | {fmt(j1)} | {ratio(j2, j1)} | "
        ">= 1.3x |",
        f"| start latency p50 / p99 ms | {fmt(b.get('p50_ms'))} / {fmt(b.get('p99_ms'))} | "
        f"best peer p50 {fmt(-lv if lv else None)} ({lk}) | "
        f"{ratio(b.get('p50_ms'), -lv if lv else None, True)} | <= 1.0 / <= 2.0 ms |",
        f"| bulk enqueue | {fmt(enq)} | {fmt(ev)} ({ek}) | {ratio(enq, ev)} | >= 2.0x |",
    ]
    return lines


def dependencies_lines(dep: dict[str, Any] | None) -> list[str]:
    """The rows of bench/dependencies.py: burn-down before/after and graph throughput."""
    if not dep:
        return []
    if "error" in dep:
        return ["", f"Dependencies: {dep['error']}"]
    lines = [
        "",
        f"Dependencies (bench/dependencies.py, {fmt(dep.get('jobs'))} no-op jobs, "
        f"median of {dep.get('rounds')} rounds):",
        "",
        "| burn-down | jobs/s | vs before | goal |",
        "| --- | --- | --- | --- |",
    ]
    for name, r in dep.get("burn_down", {}).items():
        lines.append(
            f"| {name} | {fmt(r.get('jobs_per_s'))} | {r.get('vs_before_pct')}% | within 5% |"
        )
    lines += ["", "| 1,000 jobs | claim ms | ack ms |", "| --- | --- | --- |"]
    for name, r in dep.get("statements", {}).items():
        lines.append(
            f"| {name} | {r['claim']} ({r['claim_vs_before_pct']}%) "
            f"| {r['ack']} ({r['ack_vs_before_pct']}%) |"
        )
    lines += ["", "| graph | jobs | seconds | jobs/s |", "| --- | --- | --- | --- |"]
    for name, g in dep.get("graphs", {}).items():
        if isinstance(g, dict):
            lines.append(f"| {name} | {g['jobs']} | {g['seconds']} | {fmt(g['jobs_per_s'])} |")
    lines.append(
        f"\nfan-out/fan-in vs independent: {dep.get('graphs', {}).get('fan_vs_independent')}x"
        " (goal: within 2x)"
    )
    return lines


def chart(peer_res: dict[str, Any], path: str) -> None:
    peers = peer_res.get("peers", {})
    names = [p.get("label", k) for k, p in peers.items()]
    cols = [("1 proc", 1, False), ("2 procs", 2, False), ("1 proc, knobs", 1, True)]
    if any(p.get("L") for p in peers.values()):
        n = peer_res.get("params", {}).get("long_n") or 0
        cols += [(f"{n // 1000}k: 1 proc", -1, False), (f"{n // 1000}k: 2 procs", -2, False)]
        cols += [(f"{n // 1000}k: 1 proc, knobs", -1, True)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(cols)
    for i, (label, n, t) in enumerate(cols):
        pick = a_row if n > 0 else l_row
        vals = [(pick(p, abs(n), t) or {}).get("process_jobs_s") or 0 for p in peers.values()]
        ax1.bar([x + i * width for x in range(len(names))], vals, width, label=label)
    ax1.set_xticks([x + width * (len(cols) - 1) / 2 for x in range(len(names))], names)
    ax1.set_ylabel("jobs/s (burn-down of no-op jobs)")
    ax1.set_title("Processing throughput")
    ax1.legend()
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        vals = [(p.get("B") or {}).get(key) or 0 for p in peers.values()]
        ax2.plot(names, vals, marker="o", label=key.replace("_ms", ""))
    ax2.set_ylabel("ms, enqueue -> start at 100 jobs/s")
    ax2.set_title("Latency")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def failures(peer_res: dict[str, Any], extra: dict[str, Any]) -> list[str]:
    """What did not work in jobserver's own runs (the smoke check of `bench/run --quick`)."""
    out: list[str] = []
    js = peer_res.get("peers", {}).get("jobserver")
    if not js:
        return ["no jobserver queue results"]
    for run in js.get("A", []):
        if not run.get("ok"):
            out.append(f"burn-down procs={run.get('procs')}: {run.get('error', 'not ok')}")
    if not js.get("B", {}).get("ok"):
        out.append(f"latency: {js.get('B', {}).get('error', 'not ok')}")
    for name in ("rest_batch", "rest_single", "scale", "fairness", "memory", "webhooks", "video"):
        res = extra.get(name)
        if not isinstance(res, dict) or "error" in res:
            out.append(f"{name}: {res.get('error') if isinstance(res, dict) else 'missing'}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers-json", required=True)
    ap.add_argument("--extra-json", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--check", action="store_true", help="exit 1 if a jobserver run failed")
    ap.add_argument("--dependencies-json", default="", help="bench/dependencies.py --out")
    a = ap.parse_args()
    with open(a.peers_json) as f:
        peer_res = json.load(f)
    extra: dict[str, Any] = {}
    if os.path.exists(a.extra_json):
        with open(a.extra_json) as f:
            extra = json.load(f)
    if a.dependencies_json and os.path.exists(a.dependencies_json):
        with open(a.dependencies_json) as f:
            extra["dependencies"] = json.load(f)
    os.makedirs(a.out_dir, exist_ok=True)
    base = os.path.join(a.out_dir, a.name)
    with open(base + ".json", "w") as f:
        json.dump({"queues": peer_res, "jobserver": extra}, f, indent=2)
    md = markdown(peer_res, extra)
    with open(base + ".md", "w") as f:
        f.write(md)
    chart(peer_res, base + ".png")
    print(md)
    print(f"wrote {base}.json, .md, .png")
    if a.check and (bad := failures(peer_res, extra)):
        print("bench smoke check failed:\n  " + "\n  ".join(bad), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
