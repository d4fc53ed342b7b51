"""The NER stage as Ray Data runs it: a tiny real BERT in an actor pool; artifacts staged from S3."""

import pyarrow as pa
import pytest

from pipeline import schemas


def test_actor_pool_emits_entities_with_document_offsets(ray_local, tiny_model):
    import ray.data

    from workers.stages import NerPredictor

    texts = ["Naloxone reverses the antihypertensive effect of clonidine.",
             "Famotidine-associated delirium in six patients.", ""] * 20
    sentences = pa.table({
        "doc_id": [f"pmid:{i // 3}" for i in range(len(texts))],
        "sent_idx": [i % 3 for i in range(len(texts))],
        "start": [100 * (i % 3) for i in range(len(texts))],
        "text": texts,
    })
    ds = ray.data.from_arrow(sentences).map_batches(
        NerPredictor, fn_constructor_kwargs={"model_url": str(tiny_model), "run_id": "test-run", "precision": "fp32"},
        compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1, batch_size=16, batch_format="pyarrow")
    out = pa.concat_tables(ray.get(ds.to_arrow_refs()))
    assert out.schema == schemas.ENTITIES
    assert out.num_rows > 0  # random weights still label some words
    assert set(out.column("run_id").to_pylist()) == {"test-run"}
    assert set(out.column("model_id").to_pylist()) == {next(iter(out.column("model_id").to_pylist()))}
    by_key = {(d, s): (st, t) for d, s, st, t in zip(*(sentences.column(c).to_pylist() for c in ("doc_id", "sent_idx", "start", "text")))}
    for row in out.to_pylist():
        base, text = by_key[(row["doc_id"], row["sent_idx"])]
        assert text[row["start"] - base:row["end"] - base] == row["text"]


def test_artifact_round_trip_through_s3(s3_server, tiny_model, tmp_path):
    import s3fs

    from workers.artifacts import read_manifest, stage_artifact
    from workers.ner import NerTagger

    fs = s3fs.S3FileSystem(endpoint_url=s3_server["endpoint"])
    fs.put(str(tiny_model) + "/", "pubmine/models/tiny/", recursive=True)
    local = stage_artifact("s3://pubmine/models/tiny", s3_server["storage_options"], cache_dir=tmp_path / "cache")
    assert read_manifest(local)["model_id"] == read_manifest(tiny_model)["model_id"]
    again = stage_artifact("s3://pubmine/models/tiny", s3_server["storage_options"], cache_dir=tmp_path / "cache")
    assert again == local  # staged once per node
    a = NerTagger.load(local, precision="fp32").tag(["Clonidine lowers blood pressure."])
    b = NerTagger.load(tiny_model, precision="fp32").tag(["Clonidine lowers blood pressure."])
    assert a == b
    from pipeline.errors import ModelError

    with pytest.raises(ModelError, match="pubmine.json"):
        stage_artifact("s3://pubmine/models/none", s3_server["storage_options"], cache_dir=tmp_path / "cache")
