"""What analysts run against a snapshot: ``pubmine query`` (DuckDB), ``pubmine export`` (PubTator,
BioC) and ``pubmine snapshots``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from pipeline.cli.common import app, fail, options_arg, setup_logging, snapshot_store
from pipeline.errors import PubmineError


@app.command()
def query(
    sql: str = typer.Argument(..., help="one SQL statement over the snapshot's tables (documents, passages, sentences, "
                                        "entities, relations, rejects, concepts, concept_relations, cooccurrences)"),
    store: str = typer.Option("store", "--store", "-s", help="store root URL (local path, file://, s3://)"),
    at: Optional[str] = typer.Option(None, "--at", help="the snapshot's run id (default: the one LATEST names)"),
    since: Optional[str] = typer.Option(None, "--since", help="the snapshot whose tables are previous.<table> "
                                                              "(default: the one before --at)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the result to .csv, .parquet or .json instead"),
    limit: int = typer.Option(50, "--limit", help="rows printed on the terminal (--out writes them all)"),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help="fsspec options per protocol, JSON"),
) -> None:
    """DuckDB over a snapshot, every table a view (and an earlier snapshot's as previous.<table>):
    pubmine query "select name, documents from concepts order by documents desc limit 10"
    [--at RUN_ID] [--since RUN_ID] [--out top.csv]"""
    from pipeline.knowledge import run_query
    from pipeline.publish import pick_snapshots

    try:
        where = snapshot_store(store, storage_options)
        run_id, previous = pick_snapshots(where, at, since)
        table = run_query(where, sql, run_id, previous)
    except PubmineError as err:
        fail(err)
    if out is None:
        from pipeline.report import print_table

        print_table(table, f"{run_id}: {table.num_rows} rows", limit)
        return
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    elif suffix == ".csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, out)
    elif suffix in (".json", ".jsonl"):
        out.write_text("".join(json.dumps(r, default=str) + "\n" for r in table.to_pylist()))
    else:
        fail(PubmineError(f"--out {out}: the format is told by the name; use .csv, .parquet, .json or .jsonl"))
    typer.echo(f"{table.num_rows} rows from snapshot {run_id} -> {out}")


@app.command()
def export(
    out: Path = typer.Option(..., "--out", "-o", help="the file to write"),
    format: str = typer.Option(..., "--format", "-f", help="pubtator, biocxml, biocjson, or relations "
                                "(PubTator3's relation2pubtator3 layout: PMID, type, Type|ID, Type|ID)"),
    store: str = typer.Option("store", "--store", "-s", help="store root URL (local path, file://, s3://)"),
    at: Optional[str] = typer.Option(None, "--at", help="the snapshot's run id (default: the one LATEST names)"),
    pmid: Optional[List[int]] = typer.Option(None, "--pmid", help="only these PMIDs (repeatable)"),
    where: Optional[str] = typer.Option(None, "--where", help="only documents matching this SQL condition, e.g. 'pub_year >= 2020'"),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help="fsspec options per protocol, JSON"),
) -> None:
    """A snapshot's documents with their entities (type, concept id) and relations as PubTator, BioC XML
    or BioC JSON, or its relations as PubTator3's relation2pubtator3 file:
    pubmine export --format biocxml --pmid 17212035 --out paper.xml"""
    from pipeline.export import export as export_snapshot
    from pipeline.publish import pick_snapshots

    setup_logging(False)
    try:
        where_store = snapshot_store(store, storage_options)
        run_id, _ = pick_snapshots(where_store, at)
        counts = export_snapshot(where_store, run_id, format, out, tuple(pmid or ()), where)
    except PubmineError as err:
        fail(err)
    typer.echo(f"{counts['documents']} documents, {counts['entities']} entities, {counts['relations']} relations "
               f"from snapshot {run_id} -> {out} ({format})")


@app.command()
def snapshots(
    store: str = typer.Option("store", "--store", "-s", help="store root URL (local path, file://, s3://)"),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help="fsspec options per protocol, JSON"),
) -> None:
    """The store's complete snapshots, oldest first, with when they were published and their counts."""
    import pyarrow as pa

    from pipeline.publish import list_snapshots
    from pipeline.report import print_table

    try:
        rows = list_snapshots(snapshot_store(store, storage_options))
    except PubmineError as err:
        fail(err)
    if not rows:
        fail(PubmineError(f"no complete snapshot in {store}: run `pubmine run` first (or check --store)"))
    print_table(pa.Table.from_pylist(rows), f"{len(rows)} snapshots in {store}", len(rows))


@app.command("index")
def index_cmd(
    store: str = typer.Option("store", "--store", "-s", help="store root URL (local path, file://, s3://)"),
    at: Optional[str] = typer.Option(None, "--at", help="the snapshot's run id (default: the one LATEST names)"),
    encoder: str = typer.Option("minilm", "--encoder", help="the dense retrieval encoder (folder or hub name)"),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help="fsspec options per protocol, JSON"),
) -> None:
    """Build (or rebuild) a snapshot's passage retrieval index into it, reusing the embeddings of the
    snapshot before it for unchanged documents (the nightly run does this as its index stage)."""
    from pipeline.ask import build_snapshot_index
    from pipeline.publish import pick_snapshots

    setup_logging(False)
    try:
        run_id, previous = pick_snapshots(snapshot_store(store, storage_options), at, None)
        stats = build_snapshot_index(store, options_arg(storage_options), run_id, previous, encoder)
    except PubmineError as err:
        fail(err)
    typer.echo(f"indexed {run_id}: {stats['documents']:,} documents, {stats['passages']:,} passages "
               f"({stats['embedded']:,} documents embedded, {stats['reused']:,} reused), {stats['bytes']:,} bytes")


@app.command()
def ask(
    question: str = typer.Argument(..., help="a question in English, e.g. \"Which gene is mutated in Marfan syndrome?\""),
    store: str = typer.Option("store", "--store", "-s", help="store root URL (local path, file://, s3://)"),
    at: Optional[str] = typer.Option(None, "--at", help="the snapshot's run id (default: the one LATEST names)"),
    k: int = typer.Option(10, "--k", help="passages retrieved and read"),
    mode: str = typer.Option("fused", "--mode", help="fused (BM25 + dense, reciprocal rank fusion) | bm25 | dense"),
    reader: str = typer.Option("default", "--reader", help="QA reader artifact URL (default: the default reader)"),
    as_json: bool = typer.Option(False, "--json", help="print the answers as JSON (for programs)"),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help="fsspec options per protocol, JSON"),
) -> None:
    """Answer a question from a snapshot: retrieve passages, read them, print ranked answers with their
    confidence, PMID, title, sentence and offsets, and the linked concepts in each answer."""
    from pipeline.ask import ask as run_ask

    setup_logging(False)
    try:
        result = run_ask(store, question, storage_options=options_arg(storage_options), at=at, k=k, mode=mode,
                         reader_url=reader)
    except PubmineError as err:
        fail(err)
    if as_json:
        typer.echo(json.dumps(result["answers"], indent=1, ensure_ascii=False))
        return
    typer.echo(f"{result['question']}  ({result['kind']}; {result['passages']} passages from snapshot "
               f"{result['snapshot']}, {result['mode']} retrieval, {result['reader']}"
               + (f"; {result['answer_type']} answers first" if result.get("answer_type") else "") + ")")
    if not result["answers"]:
        typer.echo("no answer: no passage matched the question")
    for rank, a in enumerate(result["answers"], start=1):
        ev = a["evidence"]
        typer.echo(f"{rank}. {a['text']}  [{a['score']:.3f}]  PMID {a['pmid']} ({a['doc_id']} {a['start']}-{a['end']})"
                   f"  {a['title'] or ''}")
        if ev["sentence"]:
            typer.echo(f"     \"{ev['sentence']}\" [{ev['sentence_start']}-{ev['sentence_end']}]")
        if ev["concepts"]:
            typer.echo("     concepts: " + ", ".join(f"{c['text']} ({c['type']} {c['concept_id']})" for c in ev["concepts"]))
