"""A junk audit of a snapshot's entities table: what an analyst sees first.

    python -m benchmarks.junk STORE [--at RUN_ID] [--top 15]

Counts, per snapshot: spans that are only digits or punctuation, single characters, units of measure
(a pattern over the span text: mg, ml, nm, Hz, femtosecond, ...; an audit, not a filter the pipeline
applies), organisms tagged Disease, Chemical or Gene (the span's text is a species name in the
normalizer's lexicon), spans with punctuation dangling at an edge or a parenthesis without its pair
("MAPK-", "-IgA", "VEGF)-A"; variants and a charge like "O2-" aside), one span under two types, and
the share of each type's mentions linked to a concept, with the most frequent unlinked mentions.
Run it on two snapshots (before and after a change) to compare. Last line: RESULT junk entities=... no_letter=... single_char=... units=...
organisms_mistyped=... dangling=... two_types=... linked_<type>=<share> ...
"""

from __future__ import annotations

import argparse
import re

from pipeline.config import default_artifact_dir

UNITS = re.compile(r"^(?:[numµμkcd]?(?:g|l|m|mol|M|s|Hz|Gy|Pa|J|W|V|A)|h|min|sec|bp|kb|kDa|Da|ppm|"
                   r"(?:femto|pico|nano|micro|milli|kilo)?(?:seconds?|meters?|grams?|liters?|litres?|molar)|"
                   r"mmHg|IU|U|°C|%)(?:/[a-zA-Z]+)*$")
DANGLING = re.compile(r"^[-/),;:](?!\d)|(?<!\d)[-/(,;:]$")   # "MAPK-", "-IgA", "poly ("; not "O2-", "-930G"
FLAGS = ("no_letter", "single_char", "units", "organisms_mistyped", "dangling")   # what a span alone can be flagged for


def audit(store: str, run_id: str | None = None, normalizer: str | None = None, top: int = 15) -> dict:
    import duckdb

    from pipeline.storage import Store
    from workers.inference.lexicon import Lexicon

    s = Store(store)
    run_id = run_id or s.read_text("LATEST").strip()
    con = duckdb.connect()
    table = f"read_parquet('{s.uri('snapshots', run_id, 'entities')}/*.parquet')"
    rows = con.sql(f"SELECT doc_id, start, \"end\", text, type, concept_id FROM {table}").fetchall()
    lexicon = Lexicon.load(normalizer or default_artifact_dir("normalizer"))
    out = {"run_id": run_id, "entities": len(rows), **dict.fromkeys(FLAGS, 0)}
    types_at: dict[tuple, set] = {}
    by_type: dict[str, list[int]] = {}
    unlinked: dict[tuple[str, str], int] = {}
    examples: dict[str, dict[str, int]] = {k: {} for k in FLAGS}
    for doc_id, start, end, text, kind, concept in rows:
        t = text.strip()
        flags = {"no_letter": not any(c.isalpha() for c in t), "single_char": len(t) == 1,
                 "units": bool(UNITS.match(t)),
                 "organisms_mistyped": kind in ("Disease", "Chemical", "Gene") and bool(lexicon.link_species(t).concept_id),
                 "dangling": kind != "Variant" and (bool(DANGLING.search(t)) or t.count("(") != t.count(")"))}
        for k, hit in flags.items():
            if hit:
                out[k] += 1
                examples[k][f"{t} ({kind})"] = examples[k].get(f"{t} ({kind})", 0) + 1
        types_at.setdefault((doc_id, start, end), set()).add(kind)
        n = by_type.setdefault(kind, [0, 0])
        n[0] += 1
        n[1] += concept is not None
        if concept is None:
            unlinked[(kind, t)] = unlinked.get((kind, t), 0) + 1
    out["two_types"] = sum(1 for v in types_at.values() if len(v) > 1)
    out["linked"] = {k: round(v[1] / v[0], 4) for k, v in sorted(by_type.items())}
    out["mentions"] = {k: v[0] for k, v in sorted(by_type.items())}
    out["examples"] = {k: sorted(v.items(), key=lambda kv: -kv[1])[:top] for k, v in examples.items()}
    out["top_unlinked"] = sorted(unlinked.items(), key=lambda kv: -kv[1])[:top]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("--at", default=None, help="snapshot run id (default: LATEST)")
    ap.add_argument("--normalizer", default=None, help="normalizer artifact whose lexicon says what a species is")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    a = audit(args.store, args.at, args.normalizer, args.top)
    print(f"snapshot {a['run_id']}: {a['entities']:,} entities")
    for k in FLAGS:
        print(f"  {k:<19} {a[k]:>6}   e.g. {', '.join(f'{t} x{n}' for t, n in a['examples'][k][:8]) or '-'}")
    print(f"  {'two_types':<19} {a['two_types']:>6}   (one span under two entity types)")
    print("  linked share: " + ", ".join(f"{k} {100 * v:.1f}% of {a['mentions'][k]:,}" for k, v in a["linked"].items()))
    print("  most frequent unlinked: " + ", ".join(f"{t!r} {k} x{n}" for (k, t), n in a["top_unlinked"]))
    shares = " ".join(f"linked_{k.lower()}={v:.4f}" for k, v in a["linked"].items())
    print(f"RESULT junk entities={a['entities']} no_letter={a['no_letter']} single_char={a['single_char']} "
          f"units={a['units']} organisms_mistyped={a['organisms_mistyped']} dangling={a['dangling']} "
          f"two_types={a['two_types']} {shares}")


if __name__ == "__main__":
    main()
