"""``labelwise project``: labeling projects, members, assignment and exports.

Run on the server itself, the command acts as the workspace operator; actions are recorded
under ``--by`` (a username), by default the first owner.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import select

from labelwise.cli.output import LabelwiseTyper, console, workspace_option
from labelwise.db.workflow_models import ProjectRow
from labelwise.errors import ValidationError
from labelwise.workflow import assignment, exports, projects
from labelwise.workflow.operator import acting_user
from labelwise.workspace import open_workspace

app = LabelwiseTyper(help="Labeling projects: members, assignment, exports.",
                     no_args_is_help=True)


def _by_option():
    return typer.Option(None, "--by", help="Username the action is recorded under (default: "
                        "the first owner).")


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Project name."),
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    split: str = typer.Option(None, "--split", help="Only this split of the dataset."),
    description: str = typer.Option("", "--description", help="What the project is for."),
    no_labels: bool = typer.Option(False, "--no-labels",
                                   help="Start without the dataset's labels as pre-labels."),
    by: str | None = _by_option(),
    workspace: Path | None = workspace_option(),
) -> None:
    """Create a project on a dataset (or split): one task per image, a copy of the schema."""
    with open_workspace(workspace) as ws, ws.session() as s, s.begin():
        p = projects.create_project(s, acting_user(s, by or None), name=name, dataset=dataset, split=split,
                                    description=description, import_labels=not no_labels)
        n = projects.project_counts(s, p.id)["todo"]
        console.print(f"[green]project {p.name}[/] (id {p.id}): {n:,} tasks")


@app.command("list")
def list_projects(workspace: Path | None = workspace_option()) -> None:
    """List every project with its task counts."""
    with open_workspace(workspace) as ws, ws.session() as s:
        table = Table("id", "project", "dataset", "todo", "in progress", "submitted",
                      "approved", "rejected", "skipped")
        for p in s.scalars(select(ProjectRow).order_by(ProjectRow.id)):
            c = projects.project_counts(s, p.id)
            table.add_row(str(p.id), p.name, str(p.dataset_id),
                          *(f"{c[k]:,}" for k in ("todo", "in_progress", "submitted",
                                                  "approved", "rejected", "skipped")))
        console.print(table)


@app.command("show")
def show(
    project: str = typer.Argument(..., help="Project name or id."),
    workspace: Path | None = workspace_option(),
) -> None:
    """A project's classes, members and progress."""
    with open_workspace(workspace) as ws, ws.session() as s:
        p = projects.find_project(s, project)
        console.print(f"[bold]{p.name}[/] (id {p.id}) on dataset {p.dataset_id}"
                      + (f", split {p.split_id}" if p.split_id else ""))
        classes = Table("class id", "name", "kind", "tool")
        for c in projects.project_classes(s, p):
            classes.add_row(str(c.id), c.name, c.kind, c.tool or "")
        console.print(classes)
        people = Table("user", "role")
        for m in projects.members(s, p):
            people.add_row(m["username"], m["role"])
        console.print(people)
        counts = projects.project_counts(s, p.id)
        console.print("  ".join(f"{k}: {v:,}" for k, v in counts.items()))


@app.command("add-member")
def add_member(
    project: str = typer.Argument(..., help="Project name or id."),
    user: str = typer.Argument(..., help="Username or id."),
    role: str = typer.Option(..., "--role", "-r", help="manager, reviewer or labeler."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Add a member to a project, or change their role."""
    with open_workspace(workspace) as ws, ws.session() as s, s.begin():
        p = projects.find_project(s, project)
        u = projects.find_user(s, user)
        projects.add_member(s, p, u, role)
        console.print(f"[green]{u.username}[/] is a {role} of {p.name}")


@app.command("assign")
def assign(
    project: str = typer.Argument(..., help="Project name or id."),
    to: list[str] = typer.Option(..., "--to", help="Username (repeat for --spread)."),
    assets: str = typer.Option(None, "--assets", help="Asset ids, comma-separated."),
    spread: int = typer.Option(None, "--spread", help="N unassigned tasks per user."),
    role: str = typer.Option("labeler", "--role", help="labeler or reviewer."),
    by: str | None = _by_option(),
    workspace: Path | None = workspace_option(),
) -> None:
    """Assign tasks: explicit --assets to one user, or --spread N to each --to user."""
    if (assets is None) == (spread is None):
        raise ValidationError("pass either --assets ID,ID,... or --spread N")
    with open_workspace(workspace) as ws, ws.session() as s, s.begin():
        p = projects.find_project(s, project)
        actor = acting_user(s, by or None)
        users = [projects.find_user(s, u) for u in to]
        if assets is not None:
            try:
                ids = [int(a) for a in assets.split(",") if a.strip()]
            except ValueError as err:
                raise ValidationError(f"--assets {assets!r} must be ids separated by commas"
                                      ) from err
            if len(users) != 1:
                raise ValidationError("--assets goes to exactly one --to user")
            given = {users[0].username: assignment.assign(s, p, users[0], ids, actor=actor,
                                                          role=role)}
        else:
            given = assignment.spread(s, p, users, spread, actor=actor, role=role)
    for username, n in given.items():
        console.print(f"{username}: {n:,} task(s)")


@app.command("export")
def export(
    project: str = typer.Argument(..., help="Project name or id."),
    fmt: str = typer.Argument(..., metavar="FORMAT", help="coco, yolo, voc, csv, classfolders."),
    out: Path = typer.Argument(..., help="Folder to write to."),
    approved_only: bool = typer.Option(False, "--approved-only",
                                       help="Only labels of approved tasks."),
    images: bool = typer.Option(True, "--images/--no-images", help="Copy the images too."),
    task: str = typer.Option(None, "--task", help="YOLO: detect, segment or pose."),
    by: str | None = _by_option(),
    workspace: Path | None = workspace_option(),
) -> None:
    """Write a project's labels in a format and keep a frozen snapshot."""
    with open_workspace(workspace) as ws:
        with ws.session() as s:
            p = projects.find_project(s, project)
            actor = acting_user(s, by or None)
        options = {"task": task} if task else {}
        made = exports.export_project(ws, p.id, fmt, dest=out, approved_only=approved_only,
                                      copy_images=images, created_by=actor.id, options=options)
    console.print(f"[green]exported[/] {made.num_assets:,} images, {made.num_annotations:,} "
                  f"labels to {out} (snapshot {made.id}, sha256 {made.sha256[:12]})")
