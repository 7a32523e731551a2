"""Results as data: every record under results/ is valid, and every generated table matches its records."""
import json
import shutil
from pathlib import Path

import pytest

from keras_attdef import cli, results
from keras_attdef.results.schema import example_record

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def test_every_published_record_validates_and_names_its_commit_and_command():
    experiments = results.load_experiments(RESULTS)
    assert "reproduce_mnist" in experiments
    for meta, records in experiments.values():
        assert records, meta["experiment"]
        for record in records:
            assert len(record["provenance"]["commit"]) == 40 and record["provenance"]["command"]
            if record.get("weights"):
                assert results.verify_weights(record, ROOT).exists()
        # every column has a value in some record (a reference's own "p vs" cell is n/a)
        shown = set().union(*(set(r["accuracy"]) | set(r.get("metrics", {})) for r in records))
        assert set(meta["columns"]) <= shown, meta["experiment"]


def test_committed_tables_are_what_report_generates():
    assert results.stale(RESULTS, ROOT) == [], "run `keras-attdef report` and commit what it writes"


def test_the_consistency_check_sees_a_hand_edited_table(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(RESULTS, repo / "results")
    shutil.copytree(ROOT / "docs", repo / "docs")
    shutil.copy(ROOT / "README.md", repo / "README.md")
    assert cli.main(["report", "--results", str(repo / "results"), "--repo", str(repo), "--check"]) == 0
    record_path = repo / "results" / "reproduce_mnist" / "madry.json"
    record = json.loads(record_path.read_text())
    record["accuracy"]["worst case"] = 0.999
    record_path.write_text(json.dumps(record))
    stale = results.stale(repo / "results", repo)
    assert str(repo / "docs" / "tables" / "reproduce_mnist.md") in stale and str(repo / "README.md") in stale
    assert cli.main(["report", "--results", str(repo / "results"), "--repo", str(repo), "--check"]) == 1
    assert cli.main(["report", "--results", str(repo / "results"), "--repo", str(repo), "--no-plots"]) == 0
    assert results.stale(repo / "results", repo) == []
    assert "99.90%" in (repo / "docs" / "tables" / "reproduce_mnist.md").read_text()


@pytest.mark.parametrize("change, message", [
    ({"accuracy": {"clean": 1.5, "worst case": 0.5}}, "not a fraction"),
    ({"headline": "APGD-T"}, "headline row"),
    ({"threat": {"norm": "l1", "eps": 0.3}}, "threat"),
    ({"provenance": {"command": "x", "seed": 0, "packages": {}, "machine": {}, "created": "now"}}, "commit"),
    ({"schema_version": 2}, "schema_version"),
    ({"surprise": 1}, "unknown fields"),
    ({"weights": {"path": "m.keras", "sha256": "abc"}}, "sha256"),
])
def test_the_schema_refuses_broken_records(change, message):
    with pytest.raises(ValueError, match=message):
        results.validate(example_record(**change))


def test_weights_with_another_checksum_are_refused(tmp_path):
    weights = tmp_path / "m.keras"
    weights.write_bytes(b"model")
    record = example_record(weights={"path": "m.keras", "sha256": results.sha256(weights)})
    assert results.verify_weights(record, tmp_path) == weights
    weights.write_bytes(b"another model")
    with pytest.raises(ValueError, match="SHA-256 differs"):
        results.verify_weights(record, tmp_path)


def test_every_generated_marker_is_filled():
    """A marker the section pattern does not match would stay empty (table names hold a colon)."""
    from keras_attdef.results import report

    root = Path(__file__).resolve().parents[1]
    for host in (root / "README.md", root / "docs" / "results.md"):
        text = host.read_text()
        matched = [m for m in report.SECTION.finditer(text)]
        assert len(matched) == text.count("<!-- generated:"), host
        assert all(m.group("body").strip() for m in matched), host


def test_provenance_names_the_commit_the_run_loaded_and_flags_sources_changed_under_it(monkeypatch):
    import importlib

    module = importlib.import_module("keras_attdef.results.provenance")
    monkeypatch.setattr(module, "_LOADED", ("a" * 40, "tree1", False))
    monkeypatch.setattr(module, "_checkout", lambda: ("b" * 40, "tree1", False))  # a commit of docs only
    record = module.provenance("cmd", 0)
    assert record["commit"] == "a" * 40 and record["dirty"] is False
    monkeypatch.setattr(module, "_checkout", lambda: ("c" * 40, "tree2", False))  # the package changed
    assert module.provenance("cmd", 0)["dirty"] is True


def test_recorded_commands_name_paths_from_their_checkout_root_so_they_rerun_elsewhere(tmp_path):
    from keras_attdef.results.provenance import portable_command

    checkout = tmp_path / "clone"
    (checkout / ".git").mkdir(parents=True)  # a worktree has a `.git` file; a clone, a directory
    outside = tmp_path / "data"
    argv = ["ablate", "--out", str(checkout / "runs" / "a b"), f"--publish={checkout / 'results'}",
            "--data-dir", str(outside), "--epochs", "4"]
    command = portable_command(argv)
    assert command == f"keras-attdef ablate --out 'runs/a b' --publish=results --data-dir {outside} --epochs 4"
    (checkout / ".git").rmdir()
    (checkout / ".git").write_text("gitdir: elsewhere")
    assert portable_command(["train", "--out", str(checkout)]) == "keras-attdef train --out ."
