"""`keras-attdef evaluate --shard I/N` + `merge`: the same report as one unsplit run, and clear errors."""
import json

import numpy as np
import pytest

from keras_attdef import cli
from keras_attdef.evaluation import shards

COMMON = ["--eval-size", "64", "--batch-size", "32", "--suite", "quick", "--eps", "0.1"]


@pytest.fixture(scope="module")
def saved_model(trained_lenet, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "lenet.keras"
    trained_lenet.save(path)
    return str(path)


@pytest.fixture(scope="module")
def partials(saved_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("parts")
    for index in range(2):
        assert cli.main(["evaluate", saved_model, *COMMON, "--shard", f"{index}/2",
                         "--out", str(folder / str(index))]) == 0
    return [folder / str(index) / "partial.json" for index in range(2)]


def test_merged_shards_give_the_unsplit_report(saved_model, partials, tmp_path):
    assert cli.main(["evaluate", saved_model, *COMMON, "--out", str(tmp_path / "whole")]) == 0
    assert cli.main(["merge", *map(str, reversed(partials)), "--out", str(tmp_path / "merged")]) == 0
    whole = json.loads((tmp_path / "whole" / "report.json").read_text())
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert 0.05 < whole["accuracy"]["worst case"] < whole["accuracy"]["clean"]  # random starts matter here
    for key in whole:
        if key != "seconds":
            assert merged[key] == whole[key], key
    starts = [json.loads(p.read_text())["start"] for p in partials]
    assert starts == [0, 32]  # whole batches


def test_merge_publishes_a_record_linked_to_the_checked_model(saved_model, partials, tmp_path):
    from keras_attdef import models, results

    published = tmp_path / "results"
    assert cli.main(["merge", *map(str, partials), "--model", saved_model, "--publish", str(published),
                     "--experiment", "full_test"]) == 0
    meta, (record,) = results.load_experiments(published)["full_test"]
    merged = shards.merge(partials)
    assert record["model"] == "lenet" and record["n"] == 64 and record["accuracy"] == merged.accuracy
    assert record["weights"]["sha256"] == results.sha256(saved_model) and record["training"] is None
    assert "not the standard AutoAttack-style cascade" in record["evaluation"]  # the quick suite says so
    assert record["provenance"]["command"].startswith("keras-attdef merge") and record["provenance"]["seed"] == 0
    assert record["provenance"]["shard_commits"] == [record["provenance"]["commit"]]  # measured by this code
    assert set(meta["columns"]) >= {"clean", "worst case"}
    other = tmp_path / "other.keras"
    models.lenet().save(other)  # untrained: not the weights the partials measured
    with pytest.raises(SystemExit, match="weights differ"):
        cli.main(["merge", *map(str, partials), "--model", str(other)])
    with pytest.raises(SystemExit, match="--name or --model"):
        cli.main(["merge", *map(str, partials), "--publish", str(published)])


def _edited(path, tmp_path, name, **changes):
    partial = json.loads(path.read_text())
    partial.update(changes)
    out = tmp_path / f"{name}.json"
    out.write_text(json.dumps(partial))
    return out


def test_bad_partial_sets_are_clear_errors(partials, tmp_path):
    first, second = map(str, partials)
    with pytest.raises(ValueError, match="overlaps"):
        shards.merge([first, second, second])
    with pytest.raises(ValueError, match="a shard is missing"):
        shards.merge([second])
    with pytest.raises(ValueError, match="a shard is missing"):
        shards.merge([first])
    with pytest.raises(ValueError, match="different models"):
        shards.merge([first, _edited(partials[1], tmp_path, "model", model="0" * 64)])
    for key, value in (("seed", 1), ("eps", 0.2)):
        with pytest.raises(ValueError, match=f"different settings \\({key}"):
            shards.merge([first, _edited(partials[1], tmp_path, key, **{key: value})])
    not_partial = tmp_path / "report.json"
    not_partial.write_text("{}")
    with pytest.raises(ValueError, match="not a version-1 partial"):
        shards.merge([first, not_partial])


@pytest.mark.parametrize("text", ["3/3", "1", "a/b", "-1/2", "0/0"])
def test_bad_shard_specs_say_how_to_write_one(text):
    with pytest.raises(ValueError, match="I/N|0..N-1"):
        shards.parse_shard(text)


def test_shards_cover_every_point_once_in_whole_batches():
    for points, batch, count in [(1000, 500, 2), (1000, 64, 7), (10, 3, 4), (96, 32, 3)]:
        ranges = [shards.shard_range(points, batch, i, count) for i in range(count)]
        assert ranges[0][0] == 0 and ranges[-1][1] == points
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(start % batch == 0 for start, _ in ranges)
    with pytest.raises(ValueError, match="at most 2 shards"):
        shards.shard_range(100, 50, 0, 3)
    assert np.all(np.diff([shards.shard_range(1000, 10, i, 4)[0] for i in range(4)]) == 250)
