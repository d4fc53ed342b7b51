"""Progress of long steps: a bar on a terminal, one quiet line per step (run id, stage, counts)
otherwise; the same for training, the pipeline's stages (tests/test_ray_job.py reads them in a
`ray job submit` log) and export (tests/test_knowledge.py)."""

import logging
import re

import pytest

from pipeline.progress import Progress, mode_of


def test_log_lines_name_the_run_the_stage_and_the_counts_so_far():
    lines = []
    with Progress("parse", total=3, unit="file", run_id="20261201T0200", mode="log", every_s=0, emit=lines.append) as bar:
        bar.update(1, documents=10)
        bar.update(2, documents=5, failed=1)
    assert lines[0].startswith("run=20261201T0200 stage=parse done=0/3 file") and lines[0].endswith("started")
    assert re.fullmatch(r"run=20261201T0200 stage=parse done=1/3 file documents=10 elapsed=\d+\.\ds", lines[1])
    assert re.fullmatch(r"run=20261201T0200 stage=parse done=3/3 file documents=15 failed=1 elapsed=\d+\.\ds finished",
                        lines[-1])


def test_log_lines_are_quiet_between_start_and_end():
    lines = []
    with Progress("extract", total=1000, unit="block", mode="log", every_s=3600, emit=lines.append) as bar:
        for _ in range(1000):
            bar.update(1, entities=3)
    assert len(lines) == 2 and "done=1,000/1,000 block entities=3,000" in lines[-1]


def test_a_failed_step_says_so_in_its_last_line():
    lines = []
    with pytest.raises(ValueError):
        with Progress("publish", total=2, mode="log", emit=lines.append) as bar:
            bar.update(1)
            raise ValueError("boom")
    assert lines[-1].endswith("failed (ValueError)") and "done=1/2" in lines[-1]


def test_a_bar_on_a_terminal_and_nothing_when_off(capsys):
    with Progress("train epoch 1/1", total=4, unit="batch", run_id="ner-x", mode="bar") as bar:
        for _ in range(4):
            bar.show(loss=0.25)
            bar.update(1)
    err = capsys.readouterr().err
    assert "ner-x train epoch 1/1" in err and "4/4" in err and "loss=0.25" in err
    with Progress("quiet", total=2, mode="off", emit=pytest.fail) as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""


def test_modes():
    assert mode_of(False) == "off" and mode_of("log") == "log"
    assert mode_of(True) == mode_of(None) == "log"  # pytest's stderr is not a terminal
    with pytest.raises(ValueError, match="bar, log or off"):
        Progress("x", mode="loud")


def test_training_writes_one_line_per_epoch_off_a_terminal(caplog, tmp_path, monkeypatch):
    import torch

    from workers.training.loop import Hyperparams, clear_checkpoint, fit

    monkeypatch.setenv("PUBMINE_HOME", str(tmp_path))
    model = torch.nn.Linear(4, 1)
    batches = [torch.randn(8, 4) for _ in range(5)]
    with caplog.at_level(logging.INFO, logger="pubmine.progress"):
        fit(model, Hyperparams(epochs=2, precision="fp32"), name="tiny-fit", device="cpu", steps_per_epoch=5,
            make_batches=lambda rng: batches, batch_loss=lambda b: model(b).pow(2).mean(), progress=True,
            log=lambda *_: None)
    clear_checkpoint("tiny-fit")
    done = [r.getMessage() for r in caplog.records if r.getMessage().endswith("finished")]
    assert len(done) == 2
    assert re.match(r"run=tiny-fit stage=train epoch 2/2 done=5/5 batch loss=\d", done[1])
