"""The run report: one self-contained HTML page per snapshot (``report.html`` beside the tables,
named by ``_manifest.json``'s ``report``), rendered from the manifest alone, so the page and the
manifest never disagree. No script, no external style, font or image: the styles are inline, the
plots are inline SVG drawn here, and a Content-Security-Policy forbids fetching anything. Every
number taken from the manifest carries ``data-key`` (its path in the manifest, dotted), so a test
can check each shown number against the manifest.

Sections: the night at a glance, stage times and throughput, what changed since the previous
snapshot, entities and relations by type, top concepts and relations, rejects by reason, the gold
spot-check (with the previous nights, so a model regression shows), the models.
"""

from __future__ import annotations

import html

from pipeline.manifest import Manifest

REPORT = "report.html"
# an F1 drop (absolute) against the previous night that the report flags as a regression
REGRESSION = 0.02
# the driver's stages in run order (the manifest's JSON sorts its keys)
STAGES = ("plan", "lease", "models", "parse", "resolve", "publish_text", "extract", "carry", "knowledge", "spotcheck", "commit")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1120px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
.sub{color:#5b6576;margin-bottom:18px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 12px}
.card .v{font-size:20px;font-weight:600}.card .k{color:#5b6576;font-size:12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:18px}
@media (max-width:820px){.grid{grid-template-columns:1fr}}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border:1px solid #dde1e7;padding:4px 8px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#eef1f5}
.bad{color:#b42318;font-weight:600}.good{color:#067647}.muted{color:#5b6576}
svg.plot{background:#fff;border:1px solid #dde1e7;border-radius:6px;display:block;max-width:100%}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}
.bar{fill:#3b6fd8}.bar.alt{fill:#d97706}.bar.red{fill:#b42318}
.line{fill:none;stroke:#3b6fd8;stroke-width:2}.line.alt{stroke:#d97706}.line.third{stroke:#067647}
svg text.lg0{fill:#3b6fd8}svg text.lg1{fill:#d97706}svg text.lg2{fill:#067647}
.note{background:#fff8e6;border:1px solid #f3d28b;border-radius:6px;padding:8px 12px}
"""


def _ranked(d: dict) -> list[tuple]:
    """A manifest mapping's items, largest first (the manifest's JSON order is not the page's)."""
    return sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _num(value) -> str:
    if isinstance(value, bool) or value is None:
        return _e(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 1 else f"{value:,.1f}"
    return _e(value)


def _v(key: str, value, cls: str = "") -> str:
    """A number from the manifest, tagged with its manifest path."""
    c = f' class="{cls}"' if cls else ""
    return f'<span data-key="{_e(key)}"{c}>{_num(value)}</span>'


def _get(d: dict, dotted: str, default=None):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return default
        d = d[part]
    return d


def bars(items: list[tuple[str, float]], title: str, unit: str = "", cls: str = "bar", width: int = 520) -> str:
    """A horizontal bar chart (inline SVG) of (label, value)."""
    if not items:
        return f'<p class="muted">{_e(title)}: nothing to plot.</p>'
    label_w, row, top = 190, 22, 26
    height = top + row * len(items) + 8
    peak = max(v for _, v in items) or 1.0
    span = width - label_w - 80
    out = [f'<svg class="plot" role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="8" y="17" font-weight="600">{_e(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = top + i * row
        w = max(1.0, span * value / peak) if value > 0 else 0.0
        short = label if len(label) <= 28 else label[:27] + "…"
        out.append(f'<text x="8" y="{y + 15}"><title>{_e(label)}</title>{_e(short)}</text>')
        out.append(f'<rect class="{cls}" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 7}" rx="2">'
                   f'<title>{_e(label)}: {_num(value)}{_e(unit)}</title></rect>')
        out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{_num(value)}{_e(unit)}</text>')
    out.append("</svg>")
    return "".join(out)


def lines(series: dict[str, list[float | None]], labels: list[str], title: str, width: int = 520,
          height: int = 220, lo: float = 0.0, hi: float = 1.0, tick: str = "{:.2f}") -> str:
    """A line chart (inline SVG): one line per series over ``labels`` (oldest first)."""
    points = [v for vs in series.values() for v in vs if v is not None]
    if not points or not labels:
        return f'<p class="muted">{_e(title)}: no history yet.</p>'
    left, right, top, bottom = 44, 12, 28, 34
    w, h = width - left - right, height - top - bottom
    x = (lambda i: left + (w * i / (len(labels) - 1) if len(labels) > 1 else w / 2))
    y = lambda v: top + h * (1 - (v - lo) / ((hi - lo) or 1))
    out = [f'<svg class="plot" role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="8" y="17" font-weight="600">{_e(title)}</text>']
    fmt = tick
    for tick in (lo, (lo + hi) / 2, hi):
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#dde1e7"/>'
                   f'<text x="4" y="{y(tick) + 4:.1f}">{fmt.format(tick)}</text>')
    for k, (name, values) in enumerate(series.items()):
        cls = ("line", "line alt", "line third")[k % 3]
        pts = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
        out.append(f'<polyline class="{cls}" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"><title>{_e(name)}</title></polyline>')
        for a, b in pts:
            out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" class="{cls}" fill="#fff"/>')
        out.append(f'<text x="{left + 8 + 150 * k}" y="{height - 8}" class="lg{k % 3}">— {_e(name)}</text>')
    out.append(f'<text x="{left}" y="{top + h + 14}" class="muted">{_e(labels[0])}</text>')
    if len(labels) > 1:
        out.append(f'<text x="{left + w}" y="{top + h + 14}" text-anchor="end">{_e(labels[-1])}</text>')
    out.append("</svg>")
    return "".join(out)


def _table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    th = "".join(f'<th class="{"n" if i in numeric else ""}">{_e(h)}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="{"n" if i in numeric else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _delta(value: int) -> str:
    return f'<span class="{"good" if value > 0 else "bad"}">{value:+,}</span>'


def _stages(m: Manifest) -> str:
    given = m.timings_s
    order = [k for k in STAGES if k in given] + sorted(k for k in given if k not in STAGES and k != "total")
    timings = {k: given[k] for k in order}
    total = m.timings_s.get("total") or sum(timings.values()) or 1.0
    rows = [[_e(k), _v(f"timings_s.{k}", v), f"{100 * v / total:.0f}%"] for k, v in timings.items()]
    tp = m.throughput
    thr = _table(["throughput", "value"], [[_e(k.replace("_", " ")), _v(f"throughput.{k}", v)] for k, v in sorted(tp.items())], {1})
    return (f'<div class="grid"><div>{bars([(k, v) for k, v in timings.items()], "seconds per stage", " s")}</div>'
            f'<div>{_table(["stage", "seconds", "share"], rows, {1, 2})}<p></p>{thr}</div></div>')


def _changes(m: Manifest) -> str:
    night, changes = m.night, m.changes
    prev = changes.get("previous")
    head = (f'<p>Against snapshot <b>{_e(prev)}</b>.</p>' if prev else '<p class="muted">The first snapshot of this store: '
            "no previous one to compare with.</p>")
    docs = [[_e(k), _v(f"night.{k}", night.get(k, 0))] for k in ("added", "revised", "unchanged", "deleted",
                                                                   "documents_extracted", "documents_reused")]
    deltas = [[_e(f"entities: {t}"), _delta(d)] for t, d in sorted(changes.get("entities_by_type", {}).items())]
    deltas += [[_e(f"relations: {t}"), _delta(d)] for t, d in sorted(changes.get("relations_by_type", {}).items())]
    k = m.knowledge
    new = ""
    if "new_relations" in k:
        new_rows = [[_e(r.get("head_name") or r["head_id"]), _e(r["type"]), _e(r.get("tail_name") or r["tail_id"]),
                     _num(r["documents"])] for r in k.get("top_new_relations", [])]
        new = (f'<p>{_v("knowledge.new_relations", k["new_relations"])} concept relations are new since the previous '
               f'snapshot.</p>' + (_table(["head", "relation", "tail", "documents"], new_rows, {3}) if new_rows else ""))
    night_plot = bars([(key, night.get(key, 0)) for key in ("added", "revised", "unchanged", "deleted")],
                      "documents tonight")
    return (head + f'<div class="grid"><div>{night_plot}<p></p>{_table(["documents", "count"], docs, {1})}</div>'
            f'<div>{_table(["change in the snapshot", "count"], deltas or [["no change in counts", ""]], {1})}'
            f"<p></p>{new}</div></div>")


def _types(m: Manifest) -> str:
    c = m.counts
    ents = _ranked(c.entities_by_type)
    rels = _ranked(c.relations_by_type)
    linked = c.linked_by_type
    et = _table(["entity type", "mentions", "linked", "share linked"],
                [[_e(t), _v(f"counts.entities_by_type.{t}", n), _v(f"counts.linked_by_type.{t}", linked.get(t, 0)),
                  f"{100 * linked.get(t, 0) / n:.1f}%" if n else "—"] for t, n in ents], {1, 2, 3})
    rt = _table(["relation type", "rows"], [[_e(t), _v(f"counts.relations_by_type.{t}", n)] for t, n in rels], {1})
    return (f'<div class="grid"><div>{bars(ents, "entities by type")}<p></p>{et}</div>'
            f'<div>{bars(rels, "relations by type", cls="bar alt")}<p></p>{rt}</div></div>')


def _top(m: Manifest) -> str:
    k = m.knowledge
    concepts, relations = k.get("top_concepts", []), k.get("top_relations", [])
    if not concepts and not relations:
        return '<p class="muted">No linked concepts in this snapshot (no normalizer, or no entity linked).</p>'
    crow = [[_e(r.get("name") or "—"), f"<code>{_e(r['concept_id'])}</code>", _e(r["type"]),
             _v(f"knowledge.top_concepts.{i}.documents", r["documents"]), _v(f"knowledge.top_concepts.{i}.mentions", r["mentions"])]
            for i, r in enumerate(concepts)]
    rrow = [[_e(r.get("head_name") or r["head_id"]), _e(r["type"]), _e(r.get("tail_name") or r["tail_id"]),
             _v(f"knowledge.top_relations.{i}.documents", r["documents"]),
             _e(f"{r.get('first_year') or '?'}–{r.get('last_year') or '?'}")] for i, r in enumerate(relations)]
    plot = bars([(r.get("name") or r["concept_id"], r["documents"]) for r in concepts[:15]], "top concepts by documents")
    return (f'<div class="grid"><div>{plot}</div><div>{_table(["concept", "id", "type", "documents", "mentions"], crow, {3, 4})}'
            f'</div></div><h3>Top concept relations</h3>'
            + (_table(["head", "relation", "tail", "documents", "years"], rrow, {3}) if rrow else '<p class="muted">none</p>'))


def _rejects(m: Manifest) -> str:
    c = m.counts
    reasons = _ranked(c.rejects_by_reason)
    failed = m.failed_inputs
    out = (f'<p>{_v("counts.rejects", c.rejects)} rejected records, '
           f'{_v("counts.failed_files", c.failed_files)} failed input files.</p>')
    if reasons:
        out += (f'<div class="grid"><div>{bars(reasons, "rejects by reason", cls="bar red")}</div><div>'
                + _table(["reason", "records"], [[_e(r), _v(f"counts.rejects_by_reason.{r}", n)] for r, n in reasons], {1})
                + "</div></div>")
    if failed:
        out += _table(["failed file", "why"], [[_e(i.source_file), _e(i.detail)] for i in failed])
    return out


def _spotcheck(m: Manifest) -> str:
    s = m.spotcheck
    if not s:
        return ('<p class="muted">No spot-check this night: set <code>report.gold</code> to a PubTator file of gold '
                "abstracts (e.g. BC5CDR's test set) to score the night's models on it.</p>")
    if "error" in s:
        return f'<p class="bad">The spot-check could not run: {_e(s["error"])}</p>'
    history = [h for h in m.history if h.get("spotcheck")]
    before = history[-2]["spotcheck"] if len(history) >= 2 else None
    rows, flags = [], []
    for level in ("mentions", "concepts", "cid"):
        if level not in s:
            continue
        kinds = [("overall", s[level])] + sorted(s[level].get("by_type", {}).items())
        for kind, sc in kinds:
            key = f"spotcheck.{level}" + ("" if kind == "overall" else f".by_type.{kind}")
            was = (_get(before, f"{level}.f1") if kind == "overall" else _get(before, f"{level}.by_type.{kind}.f1")) if before else None
            change = ""
            if was is not None:
                d = sc["f1"] - was
                change = f'<span class="{"bad" if d < -REGRESSION else "good" if d > 0 else "muted"}">{d:+.4f}</span>'
                if d < -REGRESSION:
                    flags.append(f"{level} {kind} F1 fell {was:.4f} → {sc['f1']:.4f}")
            rows.append([_e(level), _e(kind), _v(f"{key}.precision", sc["precision"]), _v(f"{key}.recall", sc["recall"]),
                         _v(f"{key}.f1", sc["f1"]), change])
    note = ("".join(f'<p class="note bad">Regression: {_e(f)} (more than {REGRESSION:.2f} below the previous night).</p>'
                    for f in flags))
    labels = [h["run_id"] for h in history]
    series = {"mentions F1": [_get(h, "spotcheck.mentions.f1") for h in history],
              "concepts F1": [_get(h, "spotcheck.concepts.f1") for h in history]}
    if any(_get(h, "spotcheck.cid.f1") is not None for h in history):
        series["CID F1"] = [_get(h, "spotcheck.cid.f1") for h in history]
    what = (f'<p>{_v("spotcheck.documents", s["documents"])} gold abstracts ({_v("spotcheck.sentences", s["sentences"])} '
            f'sentences, {_v("spotcheck.gold_mentions", s["gold_mentions"])} gold mentions) from <code>{_e(s["gold"])}</code> '
            f'through tonight\'s models and stages: exact mention spans, linked concepts per document'
            f'{", CID pairs per document" if "cid" in s else ""} ({_v("spotcheck.seconds", s["seconds"])} s).</p>')
    return (what + note + f'<div class="grid"><div>{_table(["level", "type", "precision", "recall", "F1", "vs previous night"], rows, {2, 3, 4, 5})}'
            f'</div><div>{lines(series, labels, "spot-check F1, night by night")}</div></div>')


def _models(m: Manifest) -> str:
    models = m.models
    rows = []
    for role, entry in sorted(models.items()):
        entries = entry if isinstance(entry, list) else [entry]
        for e in entries:
            if isinstance(e, dict):
                rows.append([_e(role), f"<code>{_e(e.get('model_id'))}</code>", _e(e.get("precision") or e.get("version") or "")])
            elif e is not None:
                rows.append([_e(role), _e(e), ""])
    return _table(["role", "model", "precision / version"], rows)


def _history(m: Manifest) -> str:
    h = m.history
    if len(h) < 2:
        return ""
    labels = [x["run_id"] for x in h]
    peak = max(x.get("seconds") or 0 for x in h) or 1.0
    return lines({"wall seconds": [x.get("seconds") for x in h]}, labels, "wall time, night by night", hi=peak,
                 tick="{:,.0f}")


def _retrieval(m: Manifest) -> str:
    r = m.retrieval
    rows = [[_e(label), _v(f"retrieval.{key}", r.get(key, 0))] for label, key in
            (("documents indexed", "documents"), ("passages", "passages"), ("documents embedded tonight", "embedded"),
             ("documents reused (unchanged)", "reused"), ("index bytes", "bytes"), ("encoder threads", "threads"))
            if key != "threads" or key in r]  # manifests before 2026-12-07 did not record the threads
    how = ("copied whole from the previous snapshot (nothing changed)" if r.get("copied") else
           "built tonight; unchanged documents kept their embeddings")
    return (f'<p>The passage index <code>pubmine ask</code> reads (BM25 and dense, {_e(r.get("encoder", ""))}): '
            f'{_e(how)}.</p>' + _table(["", "value"], rows, {1}))


def render(m: Manifest) -> str:
    """The report page of the snapshot whose manifest is ``m``."""
    c = m.counts
    cards = [("documents", "counts.documents", c.documents), ("sentences", "counts.sentences", c.sentences),
             ("entities", "counts.entities", c.entities), ("linked to a concept", "counts.entities_linked", c.entities_linked),
             ("relations", "counts.relations", c.relations), ("rejected records", "counts.rejects", c.rejects),
             ("wall seconds", "timings_s.total", m.timings_s.get("total", 0.0))]
    card_html = "".join(f'<div class="card"><div class="v">{_v(key, value)}</div><div class="k">{_e(label)}</div></div>'
                        for label, key, value in cards)
    spot = m.spotcheck or {}
    headline = ""
    if spot and "mentions" in spot:
        headline = (f'<div class="card"><div class="v">{_v("spotcheck.mentions.f1", spot["mentions"]["f1"])}</div>'
                    '<div class="k">spot-check mention F1</div></div>')
    sections = [("Stages", _stages(m)), ("What changed", _changes(m)), ("Entities and relations", _types(m)),
                ("Top concepts", _top(m)), ("Rejects", _rejects(m)), ("Quality spot-check", _spotcheck(m)),
                ("Models", _models(m))]
    if m.retrieval:
        sections.insert(-1, ("Retrieval index", _retrieval(m)))
    trend = _history(m)
    if trend:
        sections.append(("History", trend))
    body = "".join(f'<section id="{_e(t.lower().replace(" ", "-"))}"><h2>{_e(t)}</h2>{s}</section>' for t, s in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pubmine run {_e(m.run_id)}</title><style>{_CSS}</style></head>
<body><main>
<h1>pubmine run <span data-key="run_id">{_e(m.run_id)}</span></h1>
<div class="sub">published {_e(m.published_at)} · code {_e(m.code_version)} ·
{_v("counts.failed_files", c.failed_files)} failed input files · numbers from this snapshot's <code>_manifest.json</code></div>
<div class="cards">{card_html}{headline}</div>
{body}
</main></body></html>
"""


def history_entry(m: Manifest) -> dict:
    """What one night contributes to the next manifests' ``history`` (the trend plots)."""
    s = m.spotcheck or {}
    keep = {level: {"f1": s[level]["f1"], "by_type": {t: {"f1": v["f1"]} for t, v in s[level].get("by_type", {}).items()}}
            for level in ("mentions", "concepts", "cid") if level in s}
    return {"run_id": m.run_id, "published_at": m.published_at, "documents": m.counts.documents,
            "entities": m.counts.entities, "relations": m.counts.relations,
            "seconds": m.timings_s.get("total"), "spotcheck": keep or None}
