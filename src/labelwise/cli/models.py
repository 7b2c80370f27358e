"""``labelwise models``: the embedding models of a workspace, and adding your own ONNX model."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import typer
from rich.table import Table

from labelwise.cli.output import LabelwiseTyper, console, workspace_option
from labelwise.embeddings.backbones import list_models
from labelwise.errors import ValidationError
from labelwise.workspace import open_workspace

app = LabelwiseTyper(help="Embedding models: the built-in one and your own ONNX models.",
                     no_args_is_help=True)


def parse_numbers(text: str, option: str) -> list[float]:
    """'0.485,0.456,0.406' or '127' or '1/255' -> floats; anything else is a ValidationError."""
    try:
        return [float(Fraction(part.strip())) for part in text.split(",")]
    except (ValueError, ZeroDivisionError) as err:
        raise ValidationError(
            f"{option} {text!r} is not a list of numbers; write e.g. {option} 0.485,0.456,0.406"
        ) from err


def _one(values: list[float]) -> float:
    if len(values) != 1:
        raise ValidationError(f"--scale takes one number (e.g. 1/255), got {len(values)}")
    return values[0]


@app.command("list")
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    workspace: Path | None = workspace_option(),
) -> None:
    """List the embedding models by name."""
    with open_workspace(workspace) as ws:
        models = list_models(ws)
    if as_json:
        console.print_json(json.dumps(models))
        return
    table = Table("name", "kind", "size", "dim", "output", "normalisation", "file")
    for m in models:
        norm = f"(x * {m['scale']:.4g} - {_fmt(m['mean'])}) / {_fmt(m['std'])}"
        state = m["onnx_path"] if m["ready"] else "exported on first use" if m["builtin"] else \
            f"missing: {m['onnx_path']}"
        table.add_row(m["name"], "built-in" if m["builtin"] else "custom", str(m["input_size"]),
                      str(m["dim"]), m["output"], norm, state)
    console.print(table)


def _fmt(values: list[float]) -> str:
    if len(set(values)) == 1:
        return f"{values[0]:.4g}"
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


@app.command("add")
def add_cmd(
    name: str = typer.Argument(..., help="Name to use with `labelwise embed --model`."),
    path: Path = typer.Argument(..., help="The .onnx file: input (N, 3, H, W) float32."),
    size: int = typer.Option(..., "--size", help="Square input size in pixels, e.g. 224."),
    mean: str = typer.Option(..., "--mean", help="One value or three (R,G,B), e.g. 0.485,0.456,0.406."),
    std: str = typer.Option(..., "--std", help="One value or three (R,G,B), e.g. 0.229,0.224,0.225."),
    output: str = typer.Option(..., "--output", help="Name of the (N, d) embedding output."),
    scale: str = typer.Option("1", "--scale", help="Pixels (0-255) are multiplied by this first: 1/255 for mean/std in 0-1 units."),
    replace: bool = typer.Option(False, "--replace", help="Replace a model of that name (drops its cached embeddings)."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Add your own ONNX embedding model; it is checked on a dummy batch first."""
    with open_workspace(workspace) as ws:
        model = ws.register_model(
            name, path, input_size=size, mean=parse_numbers(mean, "--mean"),
            std=parse_numbers(std, "--std"), scale=_one(parse_numbers(scale, "--scale")),
            output=output, replace=replace,
        )
    console.print(f"[green]model {model.name}[/]: {model.dim}-d embeddings from output "
                  f"{model.output!r} at {model.input_size} px; use it with "
                  f"`labelwise embed DATASET --model {model.name}`")
