"""The house rules: one way to load a model (and what it refuses), no import cycle, and the bugs the
one-way refactor fixed (each test fails on the code before it)."""

import json
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import ModelError
from tests.conftest import ROOT


# -- one loader, and what it refuses


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_a_pickle_only_checkpoint_is_refused_with_the_reason(tiny_model, tmp_path):
    from workers.inference.artifacts import load_artifact

    folder = _copy(tiny_model, tmp_path / "pickled")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"only a pickle checkpoint \(pytorch_model.bin\).*safe_serialization=True"):
        load_artifact(folder, "ner")


@pytest.mark.parametrize("file", ["config.json", "tokenizer_config.json"])
def test_a_config_that_asks_for_remote_code_is_refused(tiny_model, tmp_path, file):
    from workers.inference.artifacts import load_artifact, load_tokenizer, stage_artifact

    folder = _copy(tiny_model, tmp_path / "remote")
    config = json.loads((folder / file).read_text())
    config["auto_map"] = {"AutoModelForTokenClassification": "modeling_evil.EvilTagger"}
    (folder / file).write_text(json.dumps(config))
    for load in (lambda: load_artifact(folder, "ner"), lambda: load_tokenizer(folder, "ner"),
                 lambda: stage_artifact(str(folder))):
        with pytest.raises(ModelError, match=rf"{file} asks for remote code \(auto_map.*never runs code"):
            load()


def test_every_model_kind_loads_through_the_one_loader(tiny_model, tiny_normalizer, tiny_relation, monkeypatch):
    """NER, relation and normalizer artifacts all go through load_artifact, each with its own task."""
    import workers.inference.artifacts as artifacts
    from workers.inference.ner import NerTagger
    from workers.inference.normalize import Normalizer
    from workers.inference.relations import RelationClassifier

    seen = []
    real = artifacts.load_artifact

    def spy(folder, task, device="cpu"):
        seen.append(task)
        return real(folder, task, device)

    for module in ("workers.inference.ner", "workers.inference.relations", "workers.inference.normalize"):
        monkeypatch.setattr(sys.modules[module], "load_artifact", spy)
    NerTagger.load(tiny_model, device="cpu")
    RelationClassifier.load(tiny_relation, device="cpu")
    Normalizer.load(tiny_normalizer)
    assert seen == ["ner", "re", "normalizer"]
    with pytest.raises(ModelError, match="holds a 'ner' artifact; this needs task 're'"):
        RelationClassifier.load(tiny_model, device="cpu")


# -- no import cycle


def test_no_import_cycle_between_any_modules():
    """Strongly connected components of the module import graph (every import, also inside functions)."""
    import grimp

    graph = grimp.build_graph("pipeline", "workers")
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m)} for m in graph.modules}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan, iterative enough for a graph this size
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(edges):
        if m not in index:
            visit(m)
    assert cycles == []


def test_the_import_contracts_hold():
    """The same check `make test` runs first; here so that pytest alone also catches a back-edge."""
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "lint-imports") if (ROOT / ".venv").is_dir() else "lint-imports"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
    contracts = (ROOT / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    assert contracts >= 4 and f"{contracts} kept, 0 broken" in out.stdout  # every contract in pyproject, none broken


# -- the bugs


def test_the_normalizer_threshold_has_one_default(tiny_model, tmp_path):
    """An artifact built without a threshold and a normalizer made in memory without one agree (they
    were 0.7 and 0.8)."""
    from workers.inference.normalize import Dictionary, Normalizer
    from workers.training.normalizer import build_normalizer

    d = Dictionary()
    d.add("Disease", "MESH:D006973", "hypertension", 1, preferred=True)
    d.sources.append("one-name")
    build_normalizer(str(tmp_path / "n"), encoder=str(tiny_model), progress=False, log=lambda *_: None, dictionary=d)
    assert Normalizer.load(tmp_path / "n").threshold == Normalizer(d).threshold


def test_evaluating_a_relation_set_without_a_model_says_which_model_to_give(tmp_path, monkeypatch):
    monkeypatch.setenv("PUBMINE_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["evaluate", "-d", "gad"])
    assert result.exit_code == 2
    assert "-d gad has no default model" in result.output and "pubmine evaluate -d gad -m DIR" in result.output


def test_evaluating_cid_without_a_model_uses_the_default_cid_model(tmp_path, monkeypatch):
    monkeypatch.setenv("PUBMINE_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["evaluate", "-d", "bc5cdr-cid"])
    assert result.exit_code == 2 and str(tmp_path / "models" / "default-cid") in result.output


@pytest.mark.parametrize("args", [["--input", "A", "B"], ["A", "B"], ["--input", "A", "--input", "B"], ["-i", "A", "B"]])
def test_run_takes_several_inputs_and_shell_expanded_globs(tmp_path, args):
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    argv = [str(a) if x == "A" else str(b) if x == "B" else x for x in args]
    result = CliRunner().invoke(app, ["run", "-c", str(ROOT / "configs" / "local.yaml"), "--dryrun", *argv])
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.output)["inputs"]) == [str(a), str(b)]


def test_a_shell_glob_reaches_pubmine_run_as_many_arguments(tmp_path):
    """The real shell: ``pubmine run -c cfg data/*.xml`` expands to every file."""
    for name in ("pubmed26n0001.xml", "pubmed26n0002.xml", "pubmed26n0003.xml"):
        (tmp_path / name).write_text("<PubmedArticleSet/>")
    pubmine = ROOT / ".venv" / "bin" / "pubmine"
    cmd = f"{pubmine if pubmine.exists() else 'pubmine'} run -c {ROOT / 'configs' / 'local.yaml'} --dryrun {tmp_path}/*.xml"
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["inputs"]) == 3


def test_the_module_map_names_every_module_and_nothing_else():
    """ARCHITECTURE.md opens with one line per module; a module added, moved or removed must show there."""
    import re

    text = (ROOT / "ARCHITECTURE.md").read_text()
    table = text[text.index("## Module map"):text.index("## ", text.index("## Module map") + 3)]
    mapped = set(re.findall(r"^\| `((?:pipeline|workers)/[\w/]+\.py)` \|", table, flags=re.M))
    code = {str(p.relative_to(ROOT)) for pkg in ("pipeline", "workers") for p in (ROOT / pkg).rglob("*.py")
            if p.name != "__init__.py" or re.search(r"^(def |import |from \w)", p.read_text().replace(
                "from __future__", ""), flags=re.M)}  # a package's __init__ that holds code
    assert mapped == code, {"not in the map": sorted(code - mapped), "not in the code": sorted(mapped - code)}


def test_store_paths_and_file_names_are_spelled_only_in_layout():
    """Every folder and file name of a store comes from pipeline.layout; a literal one elsewhere is how a
    reader and a writer drift apart (the extracted part's marker was spelled twice)."""
    import re

    names = r"state|snapshots|runs|extracted|parts|parsed|live|resolved|served|index|extract|LATEST|LEASE|_SUCCESS|" \
            r"_manifest\.json|docs\.parquet|parts\.parquet|keys-p\d+\.parquet|documents\.parquet|deletions\.parquet"
    path_calls = r"(?:run_state|snapshot_key|parsed_prefix|extracted_prefix|extracted_part|store\.\w+|self\.store\.\w+)\("
    pattern = re.compile(path_calls + r"[^()\n]*?[\"'](?:" + names + r")[\"'/]")
    found = []
    for pkg in ("pipeline", "workers"):
        for path in (ROOT / pkg).rglob("*.py"):
            if path.name == "layout.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) or re.search(r"[\"'](?:" + names + r")/", line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == []
