"""The store wrapper against the real S3 server: what another process wrote is always seen, and an
outage is retried, then classed as an outage (never as a bad file)."""

import s3fs

from pipeline.errors import is_store_outage
from pipeline.storage import S3_RETRIES, Store, options_for


def test_a_marker_written_by_another_process_is_seen_after_its_folder_was_listed(s3_server):
    store = Store("s3://pubmine/fresh", s3_server["storage_options"])
    store.write_bytes(b"e", "parts", "p1", "entities.parquet")
    assert store.glob("parts", "*", "docs.parquet") == []  # lists (and s3fs caches) parts/p1 without the marker
    worker = s3fs.S3FileSystem(endpoint_url=s3_server["endpoint"], skip_instance_cache=True)  # a Ray worker's own
    worker.pipe_file("pubmine/fresh/parts/p1/docs.parquet", b"d")
    assert [p.rsplit("/", 2)[-2] for p in store.glob("parts", "*", "docs.parquet")] == ["p1"]
    assert [p.rsplit("/", 1)[1] for p in store.parquet_files("parts", "p1")] == ["docs.parquet", "entities.parquet"]
    worker.pipe_file("pubmine/fresh/parts/p1/relations.parquet", b"r")
    assert len(store.fs.find(store._fresh(store.path("parts")))) == 3


def test_s3_requests_retry_refused_connections_with_the_configured_count():
    import botocore.exceptions

    options = options_for("s3://b/k", {"s3": {"endpoint_url": "http://127.0.0.1:1", "retries": 3}})
    assert "retries" not in options  # pubmine's own key: never handed to s3fs's constructor
    assert s3fs.S3FileSystem.retries == 3
    assert issubclass(botocore.exceptions.EndpointConnectionError, s3fs.core.S3_RETRYABLE_ERRORS)
    options_for("s3://b/k", {"s3": {}})
    assert s3fs.S3FileSystem.retries == S3_RETRIES


def test_an_outage_is_told_from_an_answer_along_the_cause_chain():
    import botocore.exceptions

    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    try:
        try:
            raise refused
        except OSError as exc:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b/k") from exc
    except Exception as wrapped:
        assert is_store_outage(wrapped)
    assert is_store_outage(RuntimeError("ray task failed: Could not connect to the endpoint URL: http://x"))
    assert not is_store_outage(FileNotFoundError("pubmine/x/_manifest.json"))
    assert not is_store_outage(OSError("not a gzipped file"))
