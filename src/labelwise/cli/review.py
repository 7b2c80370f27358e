"""``labelwise review``: pre-labels most uncertain first, and bulk-accept of a bucket.

    labelwise review queue DATASET [--model MODEL] [--bucket hard] [--limit 20]
    labelwise review accept DATASET --bucket easy [--yes]
    labelwise review reject DATASET ASSET_ID [ASSET_ID ...]
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from labelwise.cli.output import LabelwiseTyper, console, workspace_option
from labelwise.db.autolabel_models import BUCKET_NAMES
from labelwise.workspace import open_workspace

app = LabelwiseTyper(
    help="Review pre-labels: `queue` lists them most uncertain first, `accept` takes a whole "
    "difficulty bucket (and says its expected error rate first), `reject` drops wrong ones.",
    no_args_is_help=True,
)
BUCKET_HELP = f"One of {', '.join(BUCKET_NAMES)}."


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


@app.command("queue")
def queue_cmd(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    model: str = typer.Option(None, "--model", "-m", help="Review this model's latest run "
                              "(default: the dataset's latest run)."),
    run: int = typer.Option(None, "--run", min=1, help="Review this run (its id)."),
    bucket: str = typer.Option(None, "--bucket", help=BUCKET_HELP),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="Rows to show."),
    cursor: str = typer.Option(None, "--cursor", help="next_cursor of the previous page."),
    as_json: bool = typer.Option(False, "--json", help="Print the page as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Pending pre-labels of DATASET, most uncertain first."""
    with open_workspace(workspace) as ws:
        page = ws.review_queue(dataset, model=model, run=run, bucket=bucket, limit=limit,
                               cursor=cursor)
    if as_json:
        console.print_json(json.dumps(page, default=str))
        return
    r = page["run"]
    table = Table("asset", "path", "pre-label", "confidence", "uncertainty", "bucket",
                  title=f"run {r['id']}: {escape(r['model'])} v{r['version']}",
                  title_justify="left")
    for it in page["items"]:
        labels = it["labels"]
        shown = ", ".join(escape(str(a["class"])) for a in labels[:4]) or "(none)"
        if len(labels) > 4:
            shown += f" +{len(labels) - 4}"
        conf = min((a["confidence"] for a in labels if a["confidence"] is not None),
                   default=None)
        table.add_row(str(it["asset_id"]), escape(it["path"]), shown,
                      "-" if conf is None else f"{conf:.3f}", f"{it['uncertainty']:.3f}",
                      it["bucket"])
    console.print(table)
    if not page["items"]:
        console.print("nothing pending here")
    if page["next_cursor"]:
        console.print(f"next page: --cursor {page['next_cursor']}")


@app.command("accept")
def accept_cmd(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    bucket: str = typer.Option("easy", "--bucket", help=BUCKET_HELP),
    model: str = typer.Option(None, "--model", "-m", help="Accept this model's latest run "
                              "(default: the dataset's latest run)."),
    run: int = typer.Option(None, "--run", min=1, help="Accept in this run (its id)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Accept every pending pre-label of a bucket, after saying its expected error rate."""
    with open_workspace(workspace) as ws:
        preview = ws.review_accept(dataset, bucket=bucket, model=model, run=run, dry_run=True)
        if not as_json or not yes:
            console.print(
                f"{bucket} bucket of run {preview['run']['id']}: {preview['count']:,} pending "
                f"pre-labels, expected error rate {_pct(preview['expected_error_rate'])} "
                f"(about {preview['expected_errors']:.1f} wrong; held-out estimate "
                f"{_pct(preview['held_out_error_rate'])})")
        if preview["count"] == 0:
            if as_json:
                console.print_json(json.dumps(preview, default=str))
            return
        if not yes and not typer.confirm("Accept them all?", default=False):
            console.print("nothing accepted")
            raise typer.Exit(1)
        done = ws.review_accept(dataset, bucket=bucket, run=preview["run"]["id"])
    if as_json:
        console.print_json(json.dumps(done, default=str))
        return
    console.print(f"[green]accepted {done['accepted']:,} pre-labels[/] (expected error rate "
                  f"{_pct(done['expected_error_rate'])})")


@app.command("reject")
def reject_cmd(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    asset_ids: list[int] = typer.Argument(..., help="Images whose pre-labels are wrong."),
    model: str = typer.Option(None, "--model", "-m", help="This model's latest run "
                              "(default: the dataset's latest run)."),
    run: int = typer.Option(None, "--run", min=1, help="This run (its id)."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Reject pending pre-labels: their model labels are deleted, the images unlabeled again."""
    with open_workspace(workspace) as ws:
        out = ws.review_reject(dataset, asset_ids, model=model, run=run)
    console.print(f"[green]rejected {out['rejected']:,} pre-labels[/] of run {out['run']['id']}")
    if out["skipped"]:
        console.print(f"not pending in this run (left as they are): "
                      f"{', '.join(map(str, out['skipped'][:20]))}")
