"""What the fleet benchmark (hack/bench_operator_scale.py) measures in each phase, and its
report: each figure for N EventConsumers beside the same figure for one, with the goals."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from operator_bench import RequestCount

OPERATOR_RESOURCES = ("eventconsumers", "deployments", "events")


@dataclass
class Figures:
    """What one phase measured (one EventConsumer, or all of them)."""

    ready_seconds: float = 0.0
    cpu_cores: float = 0.0  # operator CPU seconds per second, steady state
    rss_bytes: int = 0
    threads: int = 0
    open_files: int = 0
    requests: RequestCount = field(default_factory=lambda: RequestCount(Counter(), {}))
    apply_requests: RequestCount = field(default_factory=lambda: RequestCount(Counter(), {}))
    operator_reads: float = 0.0  # the operator's own eventfleet_operator_api_reads_total
    # From the operator's metrics: reconciles (kopf's create/update/resume handler, ok or retry)
    # and their mean wall time, while the EventConsumers became Ready and during the window.
    apply_reconciles: float = 0.0
    apply_reconcile_seconds: float = 0.0
    window_reconciles: float = 0.0
    apply_cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds, by process
    window_cpu: dict[str, float] = field(default_factory=dict)
    window_seconds: float = 1.0
    backlog_to_decision: float = 0.0
    after_due: float = 0.0  # decision visible, after the poll that could make it was due
    poll_late: float = 0.0  # that poll's start, after it was due

    def per_second(self, count: float) -> float:
        return count / self.window_seconds


def report(count: int, namespaces: int, poll: int, one: Figures, many: Figures) -> None:
    def mb(value: int) -> str:
        return f"{value / 1e6:.0f} MB"

    def rate(figures: Figures, resources: tuple[str, ...] | None = None) -> str:
        return f"{figures.per_second(figures.requests.total(resources)):.1f}/s"

    rows = [
        ("apply -> (all) Ready", f"{one.ready_seconds:.1f} s", f"{many.ready_seconds:.1f} s",
         "< 60 s", many.ready_seconds < 60),
        ("  reconciles until then (mean time)",
         f"{one.apply_reconciles:.0f} ({one.apply_reconcile_seconds:.2f} s)",
         f"{many.apply_reconciles:.0f} ({many.apply_reconcile_seconds:.2f} s)", "", None),
        ("operator CPU, steady state", f"{one.cpu_cores:.3f} cores", f"{many.cpu_cores:.3f} cores",
         "", None),
        ("operator RSS (peak in window)", mb(one.rss_bytes), mb(many.rss_bytes), "< 300 MB",
         many.rss_bytes < 300e6),
        ("API requests, steady (every client)", rate(one), rate(many), "< 5/s",
         many.per_second(many.requests.total()) < 5),
        ("  of them to eventconsumers, deployments, events", rate(one, OPERATOR_RESOURCES),
         rate(many, OPERATOR_RESOURCES), "", None),
        ("  operator's GETs (its own metric)", f"{one.per_second(one.operator_reads):.1f}/s",
         f"{many.per_second(many.operator_reads):.1f}/s", "", None),
        ("reconciles during the window", f"{one.window_reconciles:.0f}",
         f"{many.window_reconciles:.0f}", "", None),
        ("scale decision visible after it was due", f"{one.after_due:.2f} s",
         f"{many.after_due:.2f} s", f"<= {one.after_due + 2:.2f} s",
         many.after_due <= one.after_due + 2),
        ("  of that, the poll's start after due", f"{one.poll_late:.2f} s",
         f"{many.poll_late:.2f} s", "", None),
        ("backlog -> decision visible", f"{one.backlog_to_decision:.2f} s",
         f"{many.backlog_to_decision:.2f} s", "", None),
        ("operator threads / open files", f"{one.threads} / {one.open_files}",
         f"{many.threads} / {many.open_files}", "", None),
    ]  # fmt: skip
    print(
        f"\nOperator at scale: {count} EventConsumers in {namespaces} namespaces beside 1 "
        f"(pollIntervalSeconds {poll}, steady-state window {many.window_seconds:.0f} s)"
    )
    print(f"  {'':48} {'1 EventConsumer':>16} {f'{count} EventConsumers':>20}  goal")
    for label, single, scaled, goal, met in rows:
        verdict = "" if met is None else ("met" if met else "MISSED")
        print(f"  {label:48} {single:>16} {scaled:>20}  {goal} {verdict}")
    for label, spent, seconds in (
        (f"while the {count} became Ready", many.apply_cpu, many.ready_seconds),
        (f"in the steady-state window at {count}", many.window_cpu, many.window_seconds),
    ):
        cores = os.cpu_count() or 1
        print(f"\n  CPU {label} ({seconds:.0f} s x {cores} cores = {seconds * cores:.0f} core-s):")
        print("    " + ", ".join(f"{name} {value:.1f} s" for name, value in spent.items()))
    print(
        f"\n  API requests while the {count} became Ready, per EventConsumer, and the API "
        "server's mean time to answer one (top 8):"
    )
    for kind, n in many.apply_requests.by_kind.most_common(8):
        print(
            f"    {kind[0]:7} {kind[1]:36} {n / count:6.1f}   "
            f"{many.apply_requests.mean_ms(kind):6.1f} ms"
        )
    print(f"\n  API requests per second at {count}, steady state (top 8):")
    for kind, n in many.requests.by_kind.most_common(8):
        print(
            f"    {kind[0]:7} {kind[1]:36} {many.per_second(n):6.1f}/s "
            f"{many.requests.mean_ms(kind):6.1f} ms"
        )
