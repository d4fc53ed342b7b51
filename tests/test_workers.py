"""Model artifacts staged from S3."""

import pyarrow as pa
import pytest

from pipeline import schemas


def test_artifact_round_trip_through_s3(s3_server, tiny_model, tmp_path):
    import s3fs

    from workers.inference.artifacts import read_manifest, stage_artifact
    from workers.inference.ner import NerTagger

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
