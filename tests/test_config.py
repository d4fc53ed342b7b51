import pytest

from pipeline.config import RunConfig, load_config, to_dict
from pipeline.errors import ConfigError
from tests.conftest import ROOT


def test_local_config_loads_with_overrides():
    cfg = load_config(ROOT / "configs" / "local.yaml", ["extract.num_actors=3", "extract.precision=fp32", "run_id=r1"])
    assert isinstance(cfg, RunConfig)
    assert cfg.extract.num_actors == 3 and cfg.extract.precision == "fp32" and cfg.run_id == "r1"
    assert cfg.inputs and cfg.inputs[0].startswith("../shared/data/pubmed_xml")
    assert to_dict(cfg)["extract"]["num_actors"] == 3


@pytest.mark.parametrize("name", ["base.yaml", "local.yaml", "nightly.yaml"])
def test_shipped_configs_are_valid(name):
    load_config(ROOT / "configs" / name, inputs=["x.xml"])


def test_cli_inputs_and_store_replace_config():
    cfg = load_config(ROOT / "configs" / "local.yaml", inputs=["a.xml", "b.xml.gz"], store="s3://bucket/p")
    assert cfg.inputs == ("a.xml", "b.xml.gz") and cfg.store == "s3://bucket/p"


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"extract\.num_actor'.*valid keys"):
        load_config(None, ["extract.num_actor=2"], inputs=["x.xml"])


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"extract\.num_actors.*integer.*'many'"):
        load_config(None, ["extract.num_actors=many"], inputs=["x.xml"])
    with pytest.raises(ConfigError, match=r"parse\.reuse.*true or false"):
        load_config(None, ["parse.reuse=3"], inputs=["x.xml"])


def test_invalid_values_and_missing_inputs():
    with pytest.raises(ConfigError, match="precision"):
        load_config(None, ["extract.precision=int4"], inputs=["x.xml"])
    with pytest.raises(ConfigError, match="stride"):
        load_config(None, ["extract.max_length=64", "extract.stride=40"], inputs=["x.xml"])
    with pytest.raises(ConfigError, match="no inputs"):
        load_config(None, [])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["extract.num_actors"], inputs=["x.xml"])
    with pytest.raises(ConfigError, match="run_id"):
        load_config(None, ["run_id=../etc"], inputs=["x.xml"])


def test_secrets_in_storage_options_are_masked_in_dumps():
    cfg = load_config(None, ['storage_options={s3: {endpoint_url: "http://127.0.0.1:1", key: AK, secret: SK}}'],
                      inputs=["x.xml"])
    assert cfg.storage_options["s3"]["secret"] == "SK"
    dumped = to_dict(cfg)
    assert dumped["storage_options"]["s3"] == {"endpoint_url": "http://127.0.0.1:1", "key": "***", "secret": "***"}
    assert dumped["extract"]["max_tokens_per_batch"] == cfg.extract.max_tokens_per_batch  # not a secret


def test_base_yaml_lists_every_field_with_its_default():
    """configs/base.yaml says it lists every field: the same keys as the config types, at the same
    defaults (a field added to a dataclass and not to base.yaml fails here)."""
    import dataclasses

    import yaml

    def defaults(cls) -> dict:
        out = {}
        for f in dataclasses.fields(cls):
            value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out[f.name] = defaults(type(value)) if dataclasses.is_dataclass(value) else value
        return out

    def normal(v):
        return list(v) if isinstance(v, tuple) else v

    base = yaml.safe_load((ROOT / "configs" / "base.yaml").read_text())
    want = defaults(RunConfig)

    def compare(got: dict, expected: dict, path: str):
        assert set(got) == set(expected), (path, sorted(set(got) ^ set(expected)))
        for k, v in expected.items():
            if isinstance(v, dict) and k != "storage_options":
                compare(got[k], v, f"{path}{k}.")
            else:
                assert normal(got[k]) == normal(v), f"{path}{k}: base.yaml {got[k]!r}, code {v!r}"

    compare(base, want, "")
