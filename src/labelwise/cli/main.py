"""Entry point: ``labelwise --help``."""

from __future__ import annotations

import typer

from labelwise import __version__
from labelwise.cli import datasets, db, demo, schema, serve, splits, workspace
from labelwise.cli import embed, models
from labelwise.cli import similar
from labelwise.cli import curate
from labelwise.cli import users
from labelwise.cli import projects
from labelwise.cli import autolabel, review
from labelwise.cli.output import LabelwiseTyper

app = LabelwiseTyper(
    name="labelwise",
    help="A self-hosted data engine for computer vision: import, curate, label, export.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"labelwise {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """labelwise command line."""


workspace.register(app)
datasets.register(app)
app.add_typer(splits.app, name="split")
app.add_typer(schema.app, name="schema")
app.add_typer(db.app, name="db")
serve.register(app)
demo.register(app)
embed.register(app)
app.add_typer(models.app, name="models")
similar.register(app)
app.add_typer(curate.app, name="curate")
app.add_typer(users.app, name="user")
app.add_typer(projects.app, name="project")
app.add_typer(autolabel.app, name="autolabel")
app.add_typer(review.app, name="review")

if __name__ == "__main__":  # pragma: no cover
    app()
