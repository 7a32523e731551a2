import csv
import json

import numpy as np
import pytest

from keras_attdef import AttackSpec, cli, evaluate_robustness, results


def test_report_counts_match_a_hand_computation(trained_lenet, mnist_test):
    x, y = mnist_test[0][:100], mnist_test[1][:100]
    report = evaluate_robustness(trained_lenet, (x, y), {"fgsm": AttackSpec("fgsm", eps=0.2)}, batch_size=32,
                                 progress=False)
    clean = np.mean(np.argmax(trained_lenet.predict(x, verbose=0), -1) == y)
    assert report.accuracy["clean"] == pytest.approx(clean)
    assert report.accuracy["worst case"] <= min(report.accuracy["clean"], report.accuracy["fgsm"])
    assert report.num_examples == 100
    table = report.to_markdown("t")
    assert "| fgsm |" in table and "100 examples" in table


def test_mismatched_data_is_an_error(trained_lenet, mnist_test):
    with pytest.raises(ValueError, match="labels"):
        evaluate_robustness(trained_lenet, (mnist_test[0][:10], mnist_test[1][:9]), [], progress=False)


def test_cli_train_writes_model_table_and_resumes(tmp_path, capsys):
    args = ["train", "--defense", "fast", "--epochs", "1", "--train-limit", "256", "--eval-size", "64",
            "--batch-size", "64", "--out", str(tmp_path), "--verbose", "0"]
    assert cli.main([*args, "--pgd-table", "--publish", str(tmp_path / "results"), "--experiment", "smoke"]) == 0
    out = capsys.readouterr().out
    # the headline is the AutoAttack-style figure; the PGD table, asked for, says it is PGD only
    assert out.index("Headline: AutoAttack-style (fast)") < out.index("PGD family only")
    assert "| clean |" in out and "PGD-40" in out
    result = json.loads((tmp_path / "result.json").read_text())
    results.validate(result)
    assert result["evaluation"].startswith("AutoAttack-style") and result["n"] == 64
    assert result["accuracy"]["worst case"] <= result["accuracy"]["APGD-CE"] <= result["accuracy"]["clean"]
    assert (tmp_path / "model.keras").exists() and (tmp_path / "pgd_table.md").exists()
    assert (tmp_path / "attention.png").stat().st_size > 0
    published = results.read_record(tmp_path / "results" / "smoke" / "fast.json")
    assert results.verify_weights(published).exists() and published["accuracy"] == result["accuracy"]
    assert cli.main(["evaluate", str(tmp_path / "model.keras"), "--eval-size", "32", "--suite", "quick",
                     "--out", str(tmp_path / "report")]) == 0
    assert "| clean |" in capsys.readouterr().out
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["num_examples"] == 32 and set(report["flags"]) >= {"zero_gradients", "probabilities_not_logits"}
    for name in ("report.md", "accuracy_vs_eps.png", "accuracy_vs_steps.png", "loss_landscape.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    out = tmp_path / "adv.npz"
    assert cli.main(["attack", str(tmp_path / "model.keras"), "--attack", "pgd", "--eps", "0.1", "--param", "steps=3",
                     "--eval-size", "16", "--out", str(out)]) == 0
    saved = np.load(out)
    assert saved["x_adv"].shape == (16, 28, 28, 1)
    assert np.abs(saved["x_adv"] - saved["x"]).max() <= 0.1 + 1e-6


def test_cli_train_drops_the_learning_rate_for_the_last_epochs(tmp_path):
    args = ["train", "--defense", "plain", "--epochs", "3", "--lr-drop-epochs", "1", "--train-limit", "64",
            "--eval-size", "0", "--batch-size", "32", "--out", str(tmp_path), "--verbose", "0"]
    assert cli.main(args) == 0
    with open(tmp_path / "history.csv") as f:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(f)]
    np.testing.assert_allclose(rates, [1e-3, 1e-3, 1e-4], rtol=1e-5)
    with pytest.raises(SystemExit, match="--lr-drop-epochs must be between 0 and --epochs"):
        cli.main([*args[:6], "4", *args[7:]])


def test_cli_ablate_publishes_records_that_report_reads(tmp_path, capsys):
    out, published = tmp_path / "run", tmp_path / "results"
    assert cli.main(["ablate", "--family", "pairing", "--variants", "plain", "--epochs", "1", "--train-size", "64",
                     "--eval-size", "8", "--verbose", "0", "--out", str(out), "--publish", str(published)]) == 0
    assert "Command: `" in capsys.readouterr().out
    meta, records = results.load_experiments(published)["ablate_pairing"]
    assert [r["model"] for r in records] == ["plain"] and records[0]["n"] == 8
    assert "ablate" in records[0]["provenance"]["command"] and records[0]["provenance"]["commit"]
    for command in ("reproduce", "ablate", "report"):  # every flag each parser takes parses
        with pytest.raises(SystemExit) as done:
            cli.main([command, "--help"])
        assert done.value.code == 0
