"""``labelwise autolabel``: train models on your labels, pre-label the rest, pick what to
label next, export a model as ONNX.

    labelwise autolabel train DATASET --from SPLIT --name MODEL [--task category]
    labelwise autolabel train DATASET --from-export ID --name MODEL
    labelwise autolabel show MODEL [--version N] [--json]
    labelwise autolabel list
    labelwise autolabel apply MODEL DATASET [--split S] [--engine ray]
    labelwise autolabel next DATASET --budget 100 --name round-2 [--model MODEL]
    labelwise autolabel export MODEL model.onnx [--version N]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from labelwise.autolabel.service import ENGINES, TASKS
from labelwise.cli.output import LabelwiseTyper, console, progress_bars, workspace_option
from labelwise.workspace import open_workspace

app = LabelwiseTyper(
    help="Custom Auto-Label: train a model on your labels (`train`), pre-label the rest "
    "(`apply`), choose the next images to label (`next`); review with `labelwise review`.",
    no_args_is_help=True,
)


def _json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


@app.command("train")
def train_cmd(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    name: str = typer.Option(..., "--name", "-n", help="Model name; training it again makes "
                             "the next version."),
    from_split: str = typer.Option(None, "--from", help="Train on the labels of this split "
                                   "(default: the whole dataset)."),
    from_export: int = typer.Option(None, "--from-export", min=1, help="Train on the approved "
                                    "labels frozen in this project export (its id)."),
    task: str = typer.Option("auto", "--task", help=f"One of {', '.join(TASKS)}; auto picks "
                             "from the labels."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed trains the same model."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Train MODEL (its next version) on the labels of DATASET, and show its card."""
    with open_workspace(workspace) as ws, progress_bars() as bars:
        result = ws.autolabel_train(
            dataset, name=name, source_split=from_split, source_export=from_export, task=task,
            options={"seed": seed},
            progress=lambda stage, share: bars("train", round(100 * share), 100))
    if as_json:
        _json(result.as_dict())
        return
    console.print(f"[green]trained {escape(result.name)} v{result.version}[/] ({result.task}) "
                  f"on {result.trained_on['assets']:,} images of {escape(result.dataset)}")
    _print_card(result.task, result.card)


@app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Option(None, "--version", "-v", min=1, help="Version (default: the "
                                "latest)."),
    as_json: bool = typer.Option(False, "--json", help="Print the card as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """The model card: accuracy, per-class P/R/F1, confusion, calibration, data used."""
    with open_workspace(workspace) as ws:
        info = ws.autolabel_show(name, version)
    if as_json:
        _json(info)
        return
    _print_card(info["task"], info["card"])
    table = Table("version", "trained on", "images", "data digest", "created",
                  title=f"versions of {escape(name)}", title_justify="left")
    for v in info["all_versions"]:
        t = v["trained_on"]
        source = (f"export {t['export']}" if t.get("export") is not None
                  else f"split {t['split']}" if t.get("split") else "whole dataset")
        table.add_row(f"v{v['version']}", escape(f"{t.get('dataset')}: {source}"),
                      f"{t.get('assets', 0):,}", str(t.get("data_digest", ""))[:12],
                      str(v["created_at"])[:19])
    console.print(table)


def _print_card(task: str, card: dict[str, Any]) -> None:
    if task in ("category", "multilabel"):
        from labelwise.autolabel.card import ModelCard, render_card

        console.print(render_card(ModelCard.from_dict(card)))
        return
    table = Table("", "", show_header=False, title=f"{card.get('name', 'model')} "
                  f"v{card.get('version', '?')}: {task}", title_justify="left")
    for key, value in card.items():
        if key in ("name", "version", "warnings"):
            continue
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
        table.add_row(escape(str(key)), escape(shown if len(shown) < 300 else shown[:297] + "..."))
    console.print(table)
    for w in card.get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(w)}")


@app.command("list")
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Every model with its task, dataset and latest version."""
    with open_workspace(workspace) as ws:
        models = ws.autolabel_models()
    if as_json:
        _json(models)
        return
    table = Table("model", "task", "dataset", "versions", "latest", "accuracy")
    for m in models:
        table.add_row(escape(m["name"]), m["task"], escape(m["dataset"]), str(m["versions"]),
                      f"v{m['latest_version']}" if m["latest_version"] else "-",
                      _pct(m["accuracy"]))
    console.print(table)
    if not models:
        console.print("no models yet; train one with `labelwise autolabel train DATASET "
                      "--from SPLIT --name MODEL`")


@app.command("apply")
def apply_cmd(
    model: str = typer.Argument(..., help="Model name."),
    dataset: str = typer.Argument(..., help="Dataset name or id to pre-label."),
    split: str = typer.Option(None, "--split", "-s", help="Only this split's images."),
    version: int = typer.Option(None, "--version", "-v", min=1, help="Model version (default: "
                                "the latest)."),
    engine: str = typer.Option("local", "--engine", help=f"One of {', '.join(ENGINES)}."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster address "
                                    "(default: a local instance)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Pre-label DATASET's unlabeled images; prints each bucket's expected error rate."""
    with open_workspace(workspace) as ws, progress_bars(unit="images") as bars:
        result = ws.autolabel_apply(model, dataset, split=split, version=version,
                                    engine=engine, ray_address=ray_address,
                                    progress=lambda done, total: bars("apply", done, total))
    if as_json:
        _json(result.as_dict())
        return
    console.print(
        f"[green]pre-labeled {result.images:,} images[/] of {escape(result.dataset)} with "
        f"{escape(result.model)} v{result.version} ({result.labels:,} labels, run "
        f"{result.run_id}, {result.engine}, {result.seconds:.1f} s); {result.skipped_labeled:,} "
        f"labeled images left alone, {result.replaced:,} pending pre-labels replaced")
    print_buckets(result.buckets)
    if result.tasks_updated:
        console.print(f"review order set on {result.tasks_updated:,} project tasks")
    if result.tasks_prelabeled:
        console.print(f"pre-labels put into {result.tasks_prelabeled:,} project tasks nobody "
                      "has started")


def print_buckets(buckets: dict[str, dict[str, Any]]) -> None:
    table = Table("bucket", "images", "share", "expected error", "held-out error",
                  title="Difficulty buckets", title_justify="left")
    for name in ("easy", "medium", "hard"):
        b = buckets.get(name) or {}
        table.add_row(name, f"{b.get('count', 0):,}", _pct(b.get("share")),
                      _pct(b.get("expected_error")), _pct(b.get("held_out_error")))
    console.print(table)


@app.command("next")
def next_cmd(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    budget: str = typer.Option(..., "--budget", "-b", help="How many images: a count (100) "
                               "or a share of the unlabeled pool (5%)."),
    name: str = typer.Option(..., "--name", "-n", help="Name of the split to create."),
    model: str = typer.Option(None, "--model", "-m", help="Model whose uncertainty ranks the "
                              "images (default: diversity only)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the clustering."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a split of that name."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Choose the next images to label: uncertain, spread out, never near-duplicates."""
    with open_workspace(workspace) as ws:
        out = ws.autolabel_next(dataset, budget=budget, name=name, model=model, seed=seed,
                                replace=replace)
    if as_json:
        _json(out)
        return
    ranked = (f"mean uncertainty {out['mean_uncertainty_picked']:.3f} against "
              f"{out['mean_uncertainty_pool']:.3f} in the pool" if model else "by diversity")
    console.print(f"[green]split {escape(out['split'])}[/] of {escape(out['dataset'])}: "
                  f"{len(out['asset_ids']):,} of {out['pool']:,} unlabeled images ({ranked})")


@app.command("export")
def export_cmd(
    model: str = typer.Argument(..., help="Model name."),
    dest: Path = typer.Argument(..., help="File to write: .onnx (the model's ONNX file) or "
                                ".zip (every ONNX file with the card; keypoints models)."),
    version: int = typer.Option(None, "--version", "-v", min=1, help="Version (default: the "
                                "latest)."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Write a model version as ONNX for your own use (categories: input 'embedding' float32
    (N, d), output 'probabilities' (N, classes), class names in the file's metadata; a .zip
    holds every ONNX file of the version with its card and model.json)."""
    with open_workspace(workspace) as ws:
        path = ws.autolabel_export(model, dest, version=version)
    console.print(f"[green]wrote[/] {escape(str(path))}")
