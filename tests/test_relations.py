"""Relation classification: scoring as the paper defines it, and a short real training run of a tiny
model on GAD that lowers its loss and comes back through `pubmine evaluate`."""

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_dataclass
from workers.inference.relations import RelationClassifier
from workers.training.evaluate import score_relations
from workers.training.relations import ReTrainConfig, train_relation
from tests.conftest import ROOT


def test_binary_scores_count_the_positive_class_only():
    s = score_relations(["1", "1", "0", "0", "1"], ["1", "0", "1", "0", "1"], negative="0")
    assert (round(s.precision, 4), round(s.recall, 4), round(s.f1, 4)) == (0.6667, 0.6667, 0.6667)


def test_multiclass_micro_f1_leaves_the_negative_label_out():
    s = score_relations(["A", "B", "false", "A"], ["A", "false", "B", "B"], negative="false")
    # tp: A; fp: B (gold false), B (gold A); fn: B (pred false), A (pred B)
    assert (s.precision, s.recall) == (1 / 3, 1 / 3)


def test_gold_relations_without_a_candidate_are_false_negatives():
    s = score_relations(["CID", "None"], ["CID", "None"], negative="None", missed=3)
    assert (s.precision, s.recall, s.n) == (1.0, 0.25, 5)


def test_document_level_cid_training_and_evaluate_agree(tiny_model, tmp_path):
    """BC5CDR CID: candidates built with the window the artifact records, scored on all 1,066 test
    relations by training and by `pubmine evaluate` alike."""
    cfg = load_dataclass(ReTrainConfig, ROOT / "configs/models/bc5cdr-cid.yaml", [
        f"base_model={tiny_model}", "name=tiny-cid", "limit_examples=128", "epochs=1", "max_length=64",
        "window=1", "negative_ratio=0.5"])
    out = tmp_path / "cid"
    manifest = train_relation(cfg, str(out), progress=False, log=lambda *_: None)
    assert manifest["labels"] == ["CID", "None"] and manifest["negative_label"] == "None"
    assert manifest["training"]["window"] == 1 and manifest["training"]["train_examples"] == 128
    result = CliRunner().invoke(app, ["evaluate", "--model", str(out), "--dataset", "bc5cdr-cid"])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("RESULT evaluate dataset=bc5cdr-cid ")
    assert abs(float(last.split("f1=")[1].split()[0]) - manifest["metrics"]["test"]["f1"]) < 1e-4


def test_an_interrupted_training_resumes_from_its_checkpoint_exactly(tiny_model, tmp_path, monkeypatch):
    import workers.training.loop as loop

    monkeypatch.setenv("PUBMINE_HOME", str(tmp_path / "home"))
    cfg = load_dataclass(ReTrainConfig, ROOT / "configs/models/gad.yaml", [
        f"base_model={tiny_model}", "name=tiny-resume", "limit_examples=96", "epochs=2", "learning_rate=2e-3",
        "max_length=48", "warmup_ratio=0.1"])
    whole = train_relation(cfg, str(tmp_path / "whole"), progress=False, log=lambda *_: None)

    class Killed(Exception):
        pass

    real_save = loop._save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(loop, "_save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train_relation(cfg, str(tmp_path / "resumed"), progress=False, log=lambda *_: None)
    monkeypatch.setattr(loop, "_save_checkpoint", real_save)
    said = []
    resumed = train_relation(cfg, str(tmp_path / "resumed"), progress=False, log=said.append)
    assert any("resuming tiny-resume from epoch 1" in line for line in said), said
    assert [h["train_loss"] for h in resumed["metrics"]["history"]] == [h["train_loss"] for h in whole["metrics"]["history"]]
    assert resumed["model_id"].split("-")[-1] == whole["model_id"].split("-")[-1]  # the same weights, byte for byte
    assert not loop.checkpoint_path(cfg.name).exists()  # removed once the artifact is written


def test_tiny_gad_training_lowers_loss_and_round_trips(tiny_model, tmp_path):
    cfg = load_dataclass(ReTrainConfig, ROOT / "configs/models/gad.yaml", [
        f"base_model={tiny_model}", "name=tiny-gad", "limit_examples=256", "epochs=3", "learning_rate=2e-3",
        "max_length=64"])
    out = tmp_path / "gad"
    manifest = train_relation(cfg, str(out), progress=False, log=lambda *_: None)
    losses = [h["train_loss"] for h in manifest["metrics"]["history"]]
    assert losses[-1] < losses[0], losses
    assert manifest["task"] == "re" and manifest["labels"] == ["0", "1"] and manifest["metrics"]["test"]["n"] == 534
    clf = RelationClassifier.load(out)
    assert set(clf.predict(["@GENE$ variants cause @DISEASE$.", "No link between @GENE$ and @DISEASE$."])) <= {"0", "1"}
    result = CliRunner().invoke(app, ["evaluate", "--model", str(out), "--dataset", "gad"])
    assert result.exit_code == 0, result.output
    f1 = float(result.output.strip().splitlines()[-1].split("f1=")[1].split()[0])
    assert abs(f1 - manifest["metrics"]["test"]["f1"]) < 1e-4  # the same command reproduces the number


def test_pubmine_train_dispatches_on_the_config_task(tiny_model, tmp_path):
    out = tmp_path / "re"
    result = CliRunner().invoke(app, ["train", "-c", str(ROOT / "configs/models/euadr.yaml"), "-o", str(out), "-q",
                                      "--set", f"base_model={tiny_model}", "--set", "epochs=1",
                                      "--set", "fold=3", "--set", "max_length=64"])
    assert result.exit_code == 0, result.output
    assert "(re)" in result.output and "test F1" in result.output
    assert RelationClassifier.load(out).manifest["training"]["fold"] == 3


def test_a_hub_name_goes_through_the_normal_hub_path_against_a_local_mirror(tiny_model, tmp_path):
    """base_model given as a hub name resolves through huggingface_hub's cache (HF_HUB_OFFLINE with a
    mirror laid out as the hub cache): the path a cluster with internet takes, minus the download."""
    import os
    import shutil
    import subprocess
    import sys

    snapshot = tmp_path / "hub" / "models--pubmine-test--tiny-bert" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_model, snapshot)
    (snapshot / "pubmine.json").unlink()
    refs = tmp_path / "hub" / "models--pubmine-test--tiny-bert" / "refs"
    refs.mkdir()
    (refs / "main").write_text("0" * 40)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    out = tmp_path / "from-hub"
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "-c", str(ROOT / "configs/models/gad.yaml"),
                           "-o", str(out), "-q", "--set", "base_model=pubmine-test/tiny-bert", "--set", "epochs=1",
                           "--set", "limit_examples=64", "--set", "max_length=32"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert RelationClassifier.load(out).manifest["base_model"] == "pubmine-test/tiny-bert"
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "-c", str(ROOT / "configs/models/gad.yaml"),
                           "-o", str(tmp_path / "x"), "-q", "--set", "base_model=pubmine-test/not-mirrored"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2  # offline and not in the mirror: a clear failure, no download attempt
    assert "base model 'pubmine-test/not-mirrored' could not be loaded" in proc.stderr


def test_chemprot_without_negatives_is_not_printed_beside_the_paper(tiny_model, tmp_path):
    """The ChemProt copy has positive instances only: its micro-F1 is accuracy over the labels, so
    evaluate must say so instead of printing BioBERT's 76.46 as 'the same test split'."""
    cfg = load_dataclass(ReTrainConfig, ROOT / "configs/models/chemprot.yaml", [
        f"base_model={tiny_model}", "name=tiny-chemprot", "limit_examples=64", "epochs=1", "max_length=64"])
    out = tmp_path / "chemprot"
    manifest = train_relation(cfg, str(out), progress=False, log=lambda *_: None)
    result = CliRunner().invoke(app, ["evaluate", "--model", str(out), "--dataset", "chemprot"])
    assert result.exit_code == 0, result.output
    assert "positive instances only" in result.output and "published F1" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("RESULT evaluate dataset=chemprot")
    p, r = (float(last.split(k)[1].split()[0]) for k in ("precision=", "recall="))
    assert p == r and abs(float(last.split("f1=")[1].split()[0]) - manifest["metrics"]["test"]["f1"]) < 1e-4
