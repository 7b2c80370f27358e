"""The model card of a categorization model: what it is, what trained it, how good it is.

Every number on the card comes from held-out predictions (k-fold cross-validation for small
sets, a held-out share for large ones), never from rows the scored model was trained on.
``ModelCard.to_dict`` / ``from_dict`` round-trip through JSON (``card.json`` of a stored
model); ``render_card`` draws it for the terminal with Rich.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from labelwise.errors import ValidationError

CARD_VERSION = 1


@dataclass
class ModelCard:
    """Facts about one trained categorization model.

    ``per_class``: one dict per class (``precision``, ``recall``, ``f1``, ``support``, and
    ``threshold`` for multi-label). ``confusion``: rows = true class, columns = predicted
    (single-label only). ``buckets``: the difficulty buckets' held-out statistics and
    thresholds. ``counts``: labeled examples per class. ``data_digest``: sha256 of the
    training (id, label) pairs.
    """

    task: str  # "single-label" or "multi-label"
    classes: list[str]
    head: str
    evaluation: str
    held_out_rows: int
    accuracy: float
    macro_f1: float
    per_class: list[dict[str, Any]]
    confusion: list[list[int]] | None
    ece_before: float
    ece_after: float
    calibration: str
    coverage_at_99: float
    buckets: dict[str, Any]
    uncertainty: str
    train_rows: int
    counts: dict[str, int]
    data_digest: str
    training_seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    micro_f1: float | None = None
    name: str | None = None
    version: int | None = None
    created_at: str | None = None
    embedding: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"card_version": CARD_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        data = dict(data)
        version = data.pop("card_version", None)
        if version != CARD_VERSION:
            raise ValidationError(
                f"model card version {version!r} is not supported (this labelwise reads "
                f"version {CARD_VERSION}); retrain the model with this version"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(
                f"model card has unknown fields {unknown}; was it written by a newer labelwise?"
            )
        try:
            return cls(**data)
        except TypeError as err:
            raise ValidationError(f"model card is incomplete: {err}; retrain the model") from err


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def render_card(card: ModelCard):
    """A Rich renderable of ``card``: summary, per-class scores, buckets, confusion matrix."""
    from rich.console import Group
    from rich.table import Table

    title = f"{card.name or 'model'}" + (f" v{card.version}" if card.version else "")
    summary = Table(title=f"{title}: {card.task} categorization", show_header=False)
    summary.add_column("", style="bold")
    summary.add_column("")
    rows = [
        ("head", card.head),
        ("evaluation", f"{card.evaluation} ({card.held_out_rows:,} held-out predictions)"),
        ("accuracy", _pct(card.accuracy) + (" (exact match)" if card.task == "multi-label"
                                            else "")),
        ("macro F1", f"{card.macro_f1:.3f}"),
        ("calibration",
         f"{card.calibration}: ECE {_pct(card.ece_before)} -> {_pct(card.ece_after)}"),
        ("coverage at 99% precision", _pct(card.coverage_at_99)),
        ("trained on", f"{card.train_rows:,} labels in {card.training_seconds:.1f} s"),
        ("data digest", card.data_digest[:16]),
    ]
    if card.micro_f1 is not None:
        rows.insert(4, ("micro F1", f"{card.micro_f1:.3f}"))
    for k, v in rows:
        summary.add_row(k, v)
    parts: list[Any] = [summary, _per_class_table(card), _bucket_table(card)]
    if card.confusion:
        parts.append(_confusion_table(card))
    if card.warnings:
        parts.append("\n".join(f"[yellow]warning:[/] {w}" for w in card.warnings))
    return Group(*parts)


def _per_class_table(card: ModelCard):
    from rich.table import Table

    table = Table(title="per class (held-out)")
    cols = ["class", "labels", "precision", "recall", "F1", "support"]
    if card.task == "multi-label":
        cols.append("threshold")
    for c in cols:
        table.add_column(c, justify="left" if c == "class" else "right")
    for name, s in zip(card.classes, card.per_class, strict=True):
        row = [name, str(card.counts.get(name, 0)), f"{s['precision']:.3f}",
               f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(s["support"])]
        if card.task == "multi-label":
            row.append(f"{s['threshold']:.3f}")
        table.add_row(*row)
    return table


def _bucket_table(card: ModelCard):
    from rich.table import Table

    table = Table(title=f"difficulty buckets by {card.uncertainty} uncertainty (held-out)")
    for c in ("bucket", "share", "observed error", "expected error", "uncertainty"):
        table.add_column(c, justify="left" if c == "bucket" else "right")
    b = card.buckets
    bounds = {"easy": f"<= {b['easy_max']:.3f}" if b["easy_max"] is not None else "none",
              "hard": f">= {b['hard_min']:.3f}" if b["hard_min"] is not None else "none",
              "medium": "between"}
    for name in ("easy", "medium", "hard"):
        s = b["held_out"][name]
        table.add_row(name, _pct(s["share"]), _pct(s["observed_error"]),
                      _pct(s["expected_error"]), bounds[name])
    return table


def _confusion_table(card: ModelCard):
    from rich.table import Table

    table = Table(title="confusion matrix (rows: true class, columns: predicted)")
    table.add_column("")
    short = [c[:8] for c in card.classes]
    for c in short:
        table.add_column(c, justify="right")
    for name, row in zip(short, card.confusion or [], strict=True):
        table.add_row(name, *(str(v) if v else "." for v in row))
    return table
