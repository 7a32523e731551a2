"""Tables generated from `results/`: one Markdown table and one PNG per experiment, and the README summary.

`keras-attdef report` writes `docs/tables/<experiment>.md` and `.png`, and replaces every generated section
of the README and `docs/results.md` (between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`).
`stale(results, repo)` lists what differs from what is committed (a test keeps it empty).

Example:

>>> from keras_attdef.results.schema import example_record
>>> meta = {"schema_version": 1, "experiment": "example", "title": "Example", "protocol": "One model.",
...         "command": "keras-attdef reproduce", "columns": ["clean", "worst case"]}
>>> print(experiment_table(meta, [example_record()]).splitlines()[4])
| madry | 5 | 80.6 | 98.50% | 88.30% | none |
"""
from __future__ import annotations

import re
from pathlib import Path

from keras_attdef.results.files import load_experiments
from keras_attdef.tables import markdown_table, percent

TABLES = Path("docs") / "tables"
SECTION = re.compile(r"(<!-- generated:(?P<name>[\w.:-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.S)


def _cell(record: dict, column: str) -> str:
    if column in record["accuracy"]:
        text = percent(record["accuracy"][column])
        reference = (record.get("reference") or {}).get("accuracy", {}).get(column)
        return text if reference is None else f"{text} ({reference:.2f}%)"
    value = record.get("metrics", {}).get(column)
    if value is None:
        return "n/a"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _epochs(training: dict | None) -> str:
    if training is None:
        return "n/a"
    planned = training.get("epochs_planned")
    suffix = f" of {planned}" if planned and planned != training["epochs"] else ""
    return f"{training['epochs']}{suffix}"


def experiment_table(meta: dict, records: list) -> str:
    """The experiment's table (one row per model) with its protocol, evaluation, n and commands below it."""
    header = ["model", "epochs", "train min", *meta["columns"], "audit flags"]
    rows = [[r["model"], _epochs(r["training"]),
             "n/a" if r["training"] is None else f"{r['training']['train_seconds'] / 60:.1f}",
             *(_cell(r, c) for c in meta["columns"]), ", ".join(r["audit_flags"]) or "none"] for r in records]
    evaluations = sorted({f"{r['evaluation']} on {r['n']} {r['dataset']} test points, {r['threat']['norm']} "
                          f"eps {r['threat']['eps']:g}" for r in records})
    references = sorted({r["reference"]["source"] for r in records if r.get("reference")})
    commits = sorted({r["provenance"]["commit"][:7] for r in records})
    lines = [markdown_table(header, rows), "", meta["protocol"], "",
             "Evaluation: " + "; ".join(evaluations) + ".",
             *([f"In parentheses: {'; '.join(references)}."] if references else []),
             f"Command: `{meta['command']}`. Commits: {', '.join(commits)}. Generated from `results/"
             f"{meta['experiment']}/` by `keras-attdef report`; do not edit by hand."]
    return f"### {meta['title']}\n\n" + "\n".join(lines)


def summary_table(experiments: dict) -> str:
    """The README's results: every model's clean and headline accuracy, with the evaluation that made it."""
    rows = []
    for meta, records in experiments.values():
        for r in records:
            rows.append([meta["title"], r["model"], percent(r["accuracy"]["clean"], 1),
                         f"**{percent(r['accuracy'][r['headline']], 1)}**", r["evaluation"], r["n"],
                         _epochs(r["training"])])
    return markdown_table(["experiment", "model", "clean", "headline", "evaluation", "n", "epochs"], rows)


def plot_experiment(meta: dict, records: list, path: Path) -> Path:
    """A bar chart of clean and headline accuracy per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r["model"] for r in records]
    index = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(names) + 2), 3.2))
    ax.bar(index - 0.2, [100 * r["accuracy"]["clean"] for r in records], 0.4, label="clean")
    ax.bar(index + 0.2, [100 * r["accuracy"][r["headline"]] for r in records], 0.4, label="headline (see table)")
    ax.set_xticks(index, names, rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(meta["title"], fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def render(results) -> dict:
    """`{section or file name: Markdown}`: `table:<experiment>` and `summary`, and each table's file path."""
    experiments = load_experiments(results)
    sections = {"summary": summary_table(experiments)}
    for name, (meta, records) in experiments.items():
        sections[f"table:{name}"] = experiment_table(meta, records)
    return sections


def _replace_sections(text: str, sections: dict) -> str:
    def fill(match):
        name = match.group("name")
        if name not in sections:
            raise ValueError(f"generated section {name!r} has no source under results/; remove its markers.")
        return f"{match.group(1)}{sections[name]}\n{match.group(4)}"

    return SECTION.sub(fill, text)


def expected_files(results, repo) -> dict:
    """`{path: text}` of every generated Markdown file and of each file with generated sections."""
    repo = Path(repo)
    sections = render(results)
    files = {repo / TABLES / f"{name.split(':', 1)[1]}.md": text + "\n"
             for name, text in sections.items() if name.startswith("table:")}
    for host in (repo / "README.md", repo / "docs" / "results.md"):
        if host.exists():
            files[host] = _replace_sections(host.read_text(), sections)
    return files


def stale(results, repo) -> list:
    """Generated files whose committed text differs from what `report` would write (empty when in sync)."""
    return [str(path) for path, text in expected_files(results, repo).items()
            if not path.exists() or path.read_text() != text]


def write_report(results="results", repo=".", plots: bool = True) -> list:
    """Writes every generated table, section and (with `plots`) PNG; returns the paths written."""
    written = []
    for path, text in expected_files(results, repo).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    if plots:
        for name, (meta, records) in load_experiments(results).items():
            written.append(plot_experiment(meta, records, Path(repo) / TABLES / f"{name}.png"))
    return written
