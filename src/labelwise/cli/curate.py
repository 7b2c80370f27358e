"""``labelwise curate``: choose what to label, smaller training sets, clean validation sets,
and the labels most likely wrong.

    labelwise curate DATASET --budget 25% --name to-label     (the default: select)
    labelwise curate val DATASET --size 500 --exclude train
    labelwise curate mislabels DATASET --top 100 --export suspects.csv --mark
    labelwise curate scores DATASET              (compute and store every score)
    labelwise curate list DATASET --sort rarity --cluster 3
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from labelwise.cli.output import LabelwiseGroup, LabelwiseTyper, console, workspace_option
from labelwise.curate.service import MODES, SORT_KEYS
from labelwise.embeddings.backbones import BUILTIN
from labelwise.errors import ValidationError
from labelwise.workspace import open_workspace

MODEL_HELP = "Embedding model the dataset was embedded with."
SIZE_HELP = "Input size in pixels of the embeddings (default: the one the dataset has)."
EXPORT_SUFFIXES = (".csv", ".json")


class CurateGroup(LabelwiseGroup):
    """``labelwise curate DATASET ...`` runs ``select``; a known subcommand name runs it."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["select", *args]
        return super().parse_args(ctx, args)


app = LabelwiseTyper(
    cls=CurateGroup,
    help="Auto-Curate: `labelwise curate DATASET --budget 25% --name SPLIT` chooses what to "
    "label (or a smaller, balanced training set); `val`, `mislabels`, `scores`, `list` below.",
    no_args_is_help=True,
)


def _print_summary(sel: Any) -> None:
    s = sel.summary
    console.print(
        f"[green]split {escape(sel.split)}[/] of {escape(sel.dataset)}: {s['selected']:,} of "
        f"{s['pool']:,} images ({sel.mode}, seed {sel.seed})"
    )
    table = Table("class", "pool", "selected", title="Classes", title_justify="left")
    for row in s["classes"]:
        table.add_row(escape(str(row["class"])), f"{row['pool']:,}", f"{row['selected']:,}")
    if s["classes"]:
        console.print(table)
    facts = Table("", "", show_header=False, box=None)
    facts.add_row("clusters covered", f"{s['clusters_covered']:,} of {s['clusters']:,}")
    facts.add_row("rare images (top 10% rarity)",
                  f"{s['rare_selected']:,} selected of {s['rare_in_pool']:,}")
    facts.add_row("near-duplicate groups", f"{s['duplicate_groups_in_pool']:,} in the pool, "
                  f"{s['duplicates_selected_twice']:,} selected twice")
    facts.add_row("likely mislabeled selected", f"{s['likely_mislabeled_selected']:,}")
    console.print(facts)


@app.command("select")
def select_cmd(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    budget: str = typer.Option(..., "--budget", "-b", help="How many images: a count (500) "
                               "or a share of the pool (25%)."),
    name: str = typer.Option(..., "--name", "-n", help="Name of the split to create."),
    mode: str = typer.Option("auto", "--mode", help=f"One of {', '.join(MODES)}: unlabeled = "
                             "what to label; labeled = a smaller balanced training set; objects "
                             "= detection data, by object; auto picks from the data."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same split."),
    from_split: str = typer.Option(None, "--from-split", help="Choose only among this split."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a split of that name."),
    verify: bool = typer.Option(True, "--verify/--no-verify",
                                help="Confirm near-duplicates with the pixel check."),
    model: str = typer.Option(BUILTIN, "--model", "-m", help=MODEL_HELP),
    size: int = typer.Option(None, "--size", help=SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Choose --budget images of DATASET as split --name, with a summary table."""
    with open_workspace(workspace) as ws:
        sel = ws.curate(dataset, budget=budget, name=name, mode=mode, seed=seed,
                        from_split=from_split, replace=replace, verify=verify, model=model,
                        size=size)
    if as_json:
        console.print_json(json.dumps(sel.as_dict()))
    else:
        _print_summary(sel)


@app.command("val")
def val_cmd(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    size: int = typer.Option(..., "--size", "-s", help="Images in the validation set."),
    name: str = typer.Option("val", "--name", "-n", help="Name of the split to create."),
    exclude: str = typer.Option(None, "--exclude", help="Training split to stay disjoint from."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same split."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a split of that name."),
    verify: bool = typer.Option(True, "--verify/--no-verify",
                                help="Confirm near-duplicates with the pixel check."),
    model: str = typer.Option(BUILTIN, "--model", "-m", help=MODEL_HELP),
    embed_size: int = typer.Option(None, "--embed-size", help=SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """A clean validation split: every class, rare cases, no likely-mislabeled images."""
    with open_workspace(workspace) as ws:
        sel = ws.curate_validation(dataset, size=size, name=name, exclude=exclude, seed=seed,
                                   replace=replace, verify=verify, model=model,
                                   embed_size=embed_size)
    if as_json:
        console.print_json(json.dumps(sel.as_dict()))
    else:
        _print_summary(sel)


@app.command("mislabels")
def mislabels_cmd(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    top: int = typer.Option(None, "--top", "-k", min=1, help="Only the K most suspicious."),
    objects: bool = typer.Option(False, "--objects", help="Object classes instead of image "
                                 "categories (needs `labelwise embed --objects`)."),
    min_score: float = typer.Option(0.0, "--min-score", min=0.0, max=1.0,
                                    help="Only items scoring at least this (0..1)."),
    export: Path = typer.Option(None, "--export", help="Write the list to a .csv or .json file."),
    mark: bool = typer.Option(False, "--mark", help="Flag the listed items for review and tag "
                              "their images needs-review."),
    recompute: bool = typer.Option(False, "--recompute", help="Score the labels anew first."),
    model: str = typer.Option(BUILTIN, "--model", "-m", help=MODEL_HELP),
    size: int = typer.Option(None, "--size", help=SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Rank labels by how likely they are wrong, with the label each more likely has."""
    if export is not None and export.suffix.lower() not in EXPORT_SUFFIXES:
        raise ValidationError(f"--export {export}: use a .csv or .json file name")
    with open_workspace(workspace) as ws:
        items = ws.mislabels(dataset, top=top, objects=objects, min_score=min_score,
                             recompute=recompute, model=model, size=size)
        marked = ws.mark_for_review(dataset, items) if mark and items else 0
    if export is not None:
        write_items(items, export)
    if as_json:
        console.print_json(json.dumps(items))
        return
    table = Table("#", "asset", "path", "label", "suggested", "score", title="Likely mislabeled",
                  title_justify="left")
    for rank, it in enumerate(items[:50], 1):
        table.add_row(str(rank), str(it["asset_id"]), escape(it["path"]),
                      escape(str(it["label"])), escape(str(it["suggested"])),
                      f"{it['score']:.3f}")
    console.print(table)
    if len(items) > 50:
        console.print(f"... and {len(items) - 50:,} more (--export FILE for all)")
    if export is not None:
        console.print(f"wrote {len(items):,} items to {escape(str(export))}")
    if mark:
        console.print(f"marked {marked:,} images for review (tag needs-review)")


def write_items(items: list[dict[str, Any]], path: Path) -> None:
    """Write ``items`` (dicts with the same keys) as CSV or JSON, by ``path``'s suffix."""
    try:
        if path.suffix.lower() == ".json":
            path.write_text(json.dumps(items, indent=2) + "\n")
            return
        keys = list(items[0]) if items else ["asset_id", "path", "label", "suggested", "score"]
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(items)
    except OSError as err:
        raise ValidationError(f"--export {path}: cannot write it ({err.strerror})") from err


@app.command("scores")
def scores_cmd(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    objects: bool = typer.Option(False, "--objects", help="Score annotated objects instead."),
    seed: int = typer.Option(0, "--seed", help="Seed of the clustering."),
    clusters: int = typer.Option(None, "--clusters", min=1, help="Number of clusters "
                                 "(default: about the square root of the images, at most 300)."),
    verify: bool = typer.Option(True, "--verify/--no-verify",
                                help="Confirm near-duplicates with the pixel check."),
    model: str = typer.Option(BUILTIN, "--model", "-m", help=MODEL_HELP),
    size: int = typer.Option(None, "--size", help=SIZE_HELP),
    workspace: Path | None = workspace_option(),
) -> None:
    """Compute and store every score: cluster, rarity, typicality, duplicates, mislabels."""
    with open_workspace(workspace) as ws:
        run = ws.curation_scores(dataset, compute=True, objects=objects, seed=seed,
                                 verify=verify, model=model, size=size, n_clusters=clusters)
    what = "objects" if run.objects else "images"
    console.print(
        f"[green]scored {run.items:,} {what}[/] of {escape(run.dataset)} ({run.model}, "
        f"{run.size} px): {run.clusters:,} clusters, {run.duplicate_groups:,} near-duplicate "
        f"groups ({run.in_duplicate_groups:,} {what}), {run.labeled:,} labeled, "
        f"{run.likely_mislabeled:,} likely mislabeled"
    )


@app.command("list")
def list_cmd(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    sort: str = typer.Option("asset_id", "--sort", help=f"One of {', '.join(SORT_KEYS)}."),
    ascending: bool = typer.Option(None, "--ascending/--descending",
                                   help="Order (default: scores high first, ids low first)."),
    cluster: int = typer.Option(None, "--cluster", help="Only this cluster."),
    duplicates: bool = typer.Option(False, "--duplicates", help="Only near-duplicates."),
    flagged: bool = typer.Option(None, "--flagged/--not-flagged", help="Marked for review."),
    min_rarity: float = typer.Option(None, "--min-rarity", help="Only rarity >= this."),
    min_mislabel: float = typer.Option(None, "--min-mislabel", help="Only mislabel score >= this."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="Rows to show."),
    cursor: str = typer.Option(None, "--cursor", help="next_cursor of the previous page."),
    as_json: bool = typer.Option(False, "--json", help="Print the page as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """List stored image scores, filtered and sorted (run `curate scores` first)."""
    with open_workspace(workspace) as ws:
        page = ws.curation_scores(
            dataset, sort=sort, descending=None if ascending is None else not ascending,
            cluster=cluster, duplicates_only=duplicates, flagged=flagged,
            min_rarity=min_rarity, min_mislabel=min_mislabel, limit=limit, cursor=cursor)
    if as_json:
        console.print_json(json.dumps(page))
        return
    table = Table("asset", "path", "cluster", "size", "rarity", "typicality", "dup group",
                  "mislabel", "suggested", "flag")
    for it in page["items"]:
        mis = it["mislabel_score"]
        table.add_row(str(it["asset_id"]), escape(it["path"]), str(it["cluster"]),
                      f"{it['cluster_size']:,}", f"{it['rarity']:.3f}",
                      f"{it['typicality']:.2f}", str(it["duplicate_group"] or "-"),
                      "-" if mis is None else f"{mis:.3f}",
                      escape(str(it["suggested_class"] or "-")), "yes" if it["flagged"] else "")
    console.print(table)
    if not page["items"]:
        console.print("no scores match; compute them with `labelwise curate scores DATASET`")
    if page["next_cursor"]:
        console.print(f"next page: --cursor {page['next_cursor']}")
