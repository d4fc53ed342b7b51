"""Human-readable summaries of runs and evaluations (rich tables on the terminal)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the summary's type only: `pubmine query` must not import the driver (Beam, Ray, torch)
    from pipeline.driver import RunSummary

console = Console(stderr=False, highlight=False)


def print_run_summary(s: RunSummary) -> None:
    t = Table(title=f"pubmine run {s.run_id}", show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    c = s.counts
    t.add_row("documents", f"{c.documents:,}")
    t.add_row("sentences", f"{c.sentences:,}")
    for typ, n in c.entities_by_type.items():
        linked = c.linked_by_type.get(typ, 0)
        t.add_row(f"entities: {typ}", f"{n:,}" + (f" ({100 * linked / n:.0f}% linked)" if n and c.linked_by_type else ""))
    t.add_row("entities: total", f"{sum(c.entities_by_type.values()):,}")
    t.add_row("entities linked to a concept", f"{c.entities_linked:,}" + (f" ({s.normalizer_version})" if s.normalizer_version
                                                                           else " (no normalizer)"))
    t.add_row("relations", f"{c.relations:,}" + (" (" + ", ".join(f"{k} {v:,}" for k, v in sorted(
        c.relations_by_type.items(), key=lambda kv: -kv[1])) + ")" if c.relations_by_type else ""))
    t.add_row("rejected records", f"{c.rejects:,}")
    t.add_row("deleted / superseded", f"{c.deleted:,} / {c.superseded:,}")
    if s.failed_files:
        t.add_row("[red]failed files[/red]", ", ".join(s.failed_files))
    t.add_row("model", f"{s.model_id} ({s.precision or '-'})")
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in s.timings.items() if k != "total")
    t.add_row("stages", stages)
    if s.spotcheck_f1 is not None:
        t.add_row("spot-check mention F1 (gold set)", f"{s.spotcheck_f1:.4f}")
    r = s.retrieval
    if r:
        t.add_row("retrieval index", f"{r.get('documents', 0):,} documents, {r.get('passages', 0):,} passages "
                                     f"({r.get('embedded', 0):,} embedded, {r.get('reused', 0):,} reused)")
    t.add_row("wall time", f"{s.wall_seconds:.1f} s")
    t.add_row("snapshot", s.snapshot)
    console.print(t)
    if s.report:
        print(f"run report: {s.report}", flush=True)  # one unwrapped line, for a person and for a log search
    if r:
        store = s.snapshot.rsplit("/snapshots/", 1)[0]
        print(f"ask it a question: pubmine ask --store {store} \"Which chemicals induce hypotension?\" "
              "(the reader: make qa-model)", flush=True)


def print_scores(title: str, overall: tuple[float, float, float], by_type: dict[str, tuple[float, float, float]],
                 reference: dict[str, float] | None = None) -> None:
    t = Table(title=title, title_justify="left")
    for col in ("type", "precision", "recall", "F1"):
        t.add_column(col, justify="right" if col != "type" else "left")
    for typ, (p, r, f) in by_type.items():
        t.add_row(typ, f"{100 * p:.2f}", f"{100 * r:.2f}", f"{100 * f:.2f}")
    p, r, f = overall
    t.add_row("[bold]overall[/bold]", f"{100 * p:.2f}", f"{100 * r:.2f}", f"[bold]{100 * f:.2f}[/bold]")
    console.print(t)
    if reference:
        ref = Table(title="published F1 on the same test split, for comparison", title_justify="left")
        ref.add_column("system")
        ref.add_column("F1", justify="right")
        for system, value in reference.items():
            ref.add_row(system, str(value))
        console.print(ref)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def print_table(table, title: str, limit: int = 50) -> None:
    """An Arrow table on the terminal (the first ``limit`` rows; long cells cut)."""
    console = Console()
    out = Table(title=title)
    for name in table.column_names:
        out.add_column(name, overflow="fold")
    for row in table.slice(0, limit).to_pylist():
        out.add_row(*(_cell(row[c]) for c in table.column_names))
    console.print(out)
    if table.num_rows > limit:
        console.print(f"... {table.num_rows - limit} more rows (--limit N, or --out FILE for all)")
