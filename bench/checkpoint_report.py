"""The tables, targets and JSON line of `bench.checkpoint`."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from bench.common import emit_json, print_table, tail_ratio, target_line

if TYPE_CHECKING:
    from bench.checkpoint import Cell


def report(
    by: dict[tuple[str, str, int], Cell], sizes: list[int], backends: list[str], states: list[str]
) -> None:
    nmin, nmax = min(sizes), max(sizes)
    cells = [by[(s, b, n)] for n in sizes for s in states for b in backends if (s, b, n) in by]
    headers = [
        "state",
        "backend",
        "N",
        "steps",
        "ms/step",
        "typ. ms",
        "cpu ms",
        "ckpt B/step",
        "store B/step",
        "total B/step",
        "redis B/step",
        "pg disk B/step",
        "flat",
        "flat cpu",
        "bytes last/first",
    ]
    rows = []
    for c in cells:
        rows.append(
            [
                c.state,
                c.backend,
                c.files,
                c.supersteps,
                c.ms_per_step,
                c.median_ms,
                c.cpu_ms_per_step,
                round(c.ckpt_per_step),
                round(c.store_per_step),
                round(c.bytes_per_step),
                round(c.redis_in / c.supersteps) if c.backend == "postgres+redis" else "-",
                round(c.pg_disk / c.supersteps) if c.backend.startswith("postgres") else "-",
                c.flat,
                c.flat_cpu,
                tail_ratio(c.walk_bytes) if c.walk_bytes else "-",
            ]
        )
    print_table(
        headers,
        rows,
        title=(
            "Per cell. ms/step: mean wall time of a walk superstep (review or collect), median over rounds; "
            "typ. ms: median step;\ncpu ms: this process's CPU per step; B/step: bytes stored per superstep, "
            "all supersteps, store writes included;\nflat: median step of the last 10% / of the first 10% "
            "(wall; 'flat cpu': on CPU time)"
        ),
    )

    figures: dict[str, Any] = {"sizes": sizes, "cells": [], "summary": {}, "targets": {}}
    for c in cells:
        figures["cells"].append(
            {
                "state": c.state,
                "backend": c.backend,
                "files": c.files,
                "supersteps": c.supersteps,
                "rounds": len(c.runs),
                "ms_per_step": round(c.ms_per_step, 4),
                "ms_per_step_rounds": [round(r.ms_per_step, 4) for r in c.runs],
                "median_step_ms": round(c.median_ms, 4),
                "cpu_ms_per_step": round(c.cpu_ms_per_step, 4),
                "seconds": round(c.seconds, 3),
                "ckpt_bytes_per_step": round(c.ckpt_per_step, 1),
                "store_bytes_per_step": round(c.store_per_step, 1),
                "bytes_per_step": round(c.bytes_per_step, 1),
                "store_puts": c.store_puts,
                "redis_bytes_in_per_step": round(c.redis_in / c.supersteps, 1) if c.redis_in else None,
                "pg_disk_bytes_per_step": round(c.pg_disk / c.supersteps, 1) if c.pg_disk else None,
                "time_flatness": round(c.flat, 3),
                "time_flatness_cpu": round(c.flat_cpu, 3),
                "bytes_flatness": round(tail_ratio(c.walk_bytes), 3) if c.walk_bytes else None,
            }
        )

    summary_rows = []
    for state in states:
        for b in backends:
            lo, hi = by.get((state, b, nmin)), by.get((state, b, nmax))
            if lo is None or hi is None:
                continue
            growth = hi.bytes_per_step / lo.bytes_per_step if lo.bytes_per_step else float("nan")
            summary_rows.append(
                [
                    state,
                    b,
                    lo.ms_per_step,
                    hi.ms_per_step,
                    hi.cpu_ms_per_step,
                    hi.flat,
                    hi.flat_cpu,
                    round(lo.bytes_per_step),
                    round(hi.bytes_per_step),
                    growth,
                ]
            )
            figures["summary"][f"{state}/{b}"] = {
                "ms_per_step_nmin": round(lo.ms_per_step, 4),
                "ms_per_step_nmax": round(hi.ms_per_step, 4),
                "cpu_ms_per_step_nmax": round(hi.cpu_ms_per_step, 4),
                "time_flatness_nmax": round(hi.flat, 3),
                "time_flatness_cpu_nmax": round(hi.flat_cpu, 3),
                "bytes_per_step_nmin": round(lo.bytes_per_step, 1),
                "bytes_per_step_nmax": round(hi.bytes_per_step, 1),
                "bytes_growth": round(growth, 3),
            }
    print_table(
        [
            "state",
            "backend",
            f"ms/step N={nmin}",
            f"ms/step N={nmax}",
            f"cpu ms N={nmax}",
            f"flat N={nmax}",
            f"flat cpu N={nmax}",
            f"B/step N={nmin}",
            f"B/step N={nmax}",
            f"B growth {nmax}/{nmin}",
        ],
        summary_rows,
        title="Summary",
    )
    naive, ours = by.get(("naive", "postgres", nmax)), by.get(("ours", "postgres", nmax))
    if naive is not None and ours is not None:
        times = naive.bytes_per_step / ours.bytes_per_step
        print(
            f"\n  Postgres at N={nmax}: the naive state stores {times:.0f}x the bytes per step of ours "
            f"({naive.bytes_per_step:,.0f} vs {ours.bytes_per_step:,.0f})."
        )

    decile_rows = []
    for b in backends:
        hi = by.get(("ours", b, nmax))
        if hi is not None:
            per_round = [deciles(r.walk_ms) for r in hi.runs]
            decile_rows.append([b, *(statistics.median(col) for col in zip(*per_round, strict=True))])
            figures["summary"][f"ours/{b}"]["walk_deciles_ms"] = [round(x, 3) for x in decile_rows[-1][1:]]
    if decile_rows:
        print_table(
            ["backend", *(f"{10 * i}-{10 * i + 10}%" for i in range(10))],
            decile_rows,
            title=f"State 'ours', N={nmax}: median ms per step in each tenth of the walk (median "
            "over rounds): a cost that grows with the files done rises left to right",
        )

    ratio_rows = []
    ratios = figures["summary"].setdefault("redis_over_postgres", {})
    for files in sizes:
        pg, tier = by.get(("ours", "postgres", files)), by.get(("ours", "postgres+redis", files))
        if pg is None or tier is None:
            continue
        pairs = list(zip(tier.runs, pg.runs, strict=True))
        entry = {
            "ms": paired_ratio(tier, pg),
            "typical_ms": statistics.median(t.median_ms / p.median_ms for t, p in pairs),
            "cpu_ms": statistics.median(t.cpu_ms_per_step / p.cpu_ms_per_step for t, p in pairs),
            "rounds": [round(t.ms_per_step / p.ms_per_step, 3) for t, p in pairs],
        }
        ratios[str(files)] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in entry.items()}
        ratio_rows.append(
            [
                files,
                len(pairs),
                entry["ms"],
                entry["typical_ms"],
                entry["cpu_ms"],
                " ".join(f"{r:.2f}" for r in entry["rounds"]),
            ]
        )
    if ratio_rows:
        print_table(
            ["N", "rounds", "ms/step", "typ. step", "client cpu", "each round (ms/step)"],
            ratio_rows,
            title="Postgres+Redis / Postgres, state 'ours' (median of rounds run side by side)",
        )

    print("\nTargets (state 'ours'):")
    targets: dict[str, Any] = {}
    if str(nmax) in ratios:
        targets["redis_over_postgres"] = target_line(
            f"Postgres+Redis / Postgres ms per step at N={nmax}", ratios[str(nmax)]["ms"], 1.1
        )
    for b in backends:
        hi, lo = by.get(("ours", b, nmax)), by.get(("ours", b, nmin))
        if hi is not None:
            targets[f"flat/{b}"] = target_line(
                f"{b}: last 10% / first 10% ms per step at N={nmax} (on CPU: {hi.flat_cpu:.3f})", hi.flat, 1.2
            )
        if hi is not None and lo is not None and lo.bytes_per_step:
            targets[f"bytes_growth/{b}"] = target_line(
                f"{b}: bytes per step N={nmax} / N={nmin}", hi.bytes_per_step / lo.bytes_per_step, 1.2
            )
    figures["targets"] = targets
    emit_json(figures)


def deciles(values: list[float]) -> list[float]:
    k = max(1, len(values) // 10)
    return [statistics.median(values[i * k : (i + 1) * k] or values[-k:]) for i in range(10)]


def paired_ratio(a: Cell, b: Cell) -> float:
    """Median over rounds of a's ms/step over b's in the same round (they ran side by side)."""
    return statistics.median(x.ms_per_step / y.ms_per_step for x, y in zip(a.runs, b.runs, strict=True))
