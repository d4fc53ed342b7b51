"""A short real training run: a tiny BERT fine-tuned on 30 BC5CDR abstracts measurably lowers its loss,
and the result is a loadable artifact whose model_id is its content hash."""

from pipeline.config import load_dataclass
from workers.artifacts import content_hash, read_manifest
from workers.ner import NerTagger
from workers.train import NerTrainConfig, train_ner
from tests.conftest import ROOT


def test_tiny_training_run_lowers_loss_and_writes_an_artifact(tiny_model, tmp_path):
    cfg = load_dataclass(NerTrainConfig, ROOT / "configs/models/default-ner.yaml", [
        f"base_model={tiny_model}", "name=tiny-trained", "limit_docs=30", "epochs=3", "learning_rate=3e-3",
        "freeze_word_embeddings=false", "dev=[ncbi_disease/pubtator/NCBIdevelopset_corpus.txt]", "patience=5"])
    out = tmp_path / "trained"
    manifest = train_ner(cfg, str(out), progress=False, log=lambda *_: None)
    losses = [h["train_loss"] for h in manifest["metrics"]["history"]]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], losses
    assert manifest["model_id"] == f"tiny-trained-{content_hash(out)}"
    assert read_manifest(out)["labels"] == ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]
    assert manifest["training"]["train_documents"] == 30
    tagger = NerTagger.load(out, precision="fp32")
    assert isinstance(tagger.tag(["Cisplatin induced nephrotoxicity in rats."])[0], list)
