"""What `autolabel apply` adds per project on the dataset: pre-labels into untouched tasks.

    .venv/bin/python benchmarks/prelabel_tasks.py                    # 20,000 tasks, both backends
    .venv/bin/python benchmarks/prelabel_tasks.py --tasks 5000 --backends sqlite

A dataset of ``--tasks`` images (rows only: no pixels are read) with one model label each from
a pre-label run, and a project over it made with ``--no-labels``. Timed, each in its own
transaction, median of ``--repeats``:

- reference: copying the same labels into the tasks as project creation does
  (``projects._copy_labels`` over every task, one streaming query);
- ``push_prelabels``: the same labels into every untouched todo task, with the checks (task
  untouched, status guard, version bump, earlier run's labels removed);
- ``set_uncertainty``: the tasks' review order, which apply has always set.

Results: benchmarks/results/prelabel_tasks.json. PostgreSQL: LABELWISE_BENCH_POSTGRES_URL
(default: the local server's database ``test``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import console, median, print_table, write_results
from sqlalchemy import delete, insert, select

import labelwise
from labelwise.db.account_models import UserRow
from labelwise.db.models import AnnotationRow, AssetRow, DatasetRow, LabelClassRow, LabelSchemaRow
from labelwise.db.workflow_models import ProjectRow, TaskAnnotationRow
from labelwise.workflow import projects

RUN = 1_000_001  # the pre-label run id the labels carry (no run row is needed here)


def build(ws: labelwise.Workspace, n: int, tag: str) -> tuple[int, int]:
    """Dataset + labels + project; returns (project id, dataset schema id)."""
    with ws.session() as s, s.begin():
        schema = LabelSchemaRow(name=f"bench-{tag}")
        s.add(schema)
        s.flush()
        cls = LabelClassRow(schema_id=schema.id, name="thing", kind="category", color="#808080")
        ds = DatasetRow(name=f"bench-{tag}", schema_id=schema.id)
        s.add_all([cls, ds])
        s.flush()
        s.execute(insert(AssetRow), [
            {"dataset_id": ds.id, "path": f"{i}.png", "content_hash": f"{i:064d}", "width": 8,
             "height": 8, "format": "png", "size_bytes": 1, "meta": {}} for i in range(n)])
        assets = s.scalars(select(AssetRow.id).where(AssetRow.dataset_id == ds.id)).all()
        s.execute(insert(AnnotationRow), [
            {"dataset_id": ds.id, "asset_id": a, "class_id": cls.id, "source": "model",
             "confidence": 0.5 + (a % 50) / 100, "prelabel_run_id": RUN,
             "fingerprint": f"f{a}", "iscrowd": False} for a in assets])
        boss = UserRow(username=f"boss-{tag}", display_name="boss", password_hash="!",
                       role="manager", is_active=True)
        s.add(boss)
        s.flush()
        project = projects.create_project(s, boss, name=f"bench-{tag}", dataset=ds.name,
                                          import_labels=False)
        return project.id, schema.id


def timed(ws: labelwise.Workspace, fn) -> tuple[float, int]:
    with ws.session() as s, s.begin():
        t0 = time.perf_counter()
        out = fn(s)
        return time.perf_counter() - t0, out


def bench(ws: labelwise.Workspace, n: int, repeats: int, tag: str) -> dict:
    pid, schema_id = build(ws, n, tag)
    with ws.session() as s:
        assets = list(s.scalars(select(AnnotationRow.asset_id)
                                .where(AnnotationRow.prelabel_run_id == RUN,
                                       AnnotationRow.class_id.in_(
                                           select(LabelClassRow.id).where(
                                               LabelClassRow.schema_id == schema_id)))))
    copy, push, order = [], [], []

    def clear(s) -> int:
        return s.execute(delete(TaskAnnotationRow).where(TaskAnnotationRow.project_id == pid)
                         ).rowcount

    for _ in range(repeats):
        timed(ws, clear)
        secs, copied = timed(ws, lambda s: projects._copy_labels(
            s, s.get(ProjectRow, pid), schema_id, AnnotationRow.prelabel_run_id == RUN))
        copy.append(secs)
        timed(ws, clear)
        secs, pushed = timed(ws, lambda s: projects.push_prelabels(
            s, s.get(ProjectRow, pid), run_id=RUN, replaces=[RUN - 1], asset_ids=assets))
        push.append(secs)
        secs, _ = timed(ws, lambda s: projects.set_uncertainty(
            s, s.get(ProjectRow, pid), {a: 0.5 for a in assets}))
        order.append(secs)
        assert copied == pushed == n, (copied, pushed, n)
    return {"tasks": n, "copy_seconds": median(copy), "push_seconds": median(push),
            "set_uncertainty_seconds": median(order),
            "push_vs_copy": median(push) / median(copy)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    results = {}
    tag = str(int(time.time()))
    for backend in args.backends.split(","):
        root = Path(tempfile.mkdtemp()) / "ws"
        if backend == "sqlite":
            ws = labelwise.init(root)
        else:
            url = os.environ.get("LABELWISE_BENCH_POSTGRES_URL",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432/test")
            ws = labelwise.init(root, database_url=url)
        try:
            results[backend] = bench(ws, args.tasks, args.repeats, tag)
        finally:
            ws.close()
        console.print(f"{backend}: {results[backend]}")
    print_table(f"Pre-labels into {args.tasks:,} untouched tasks (median of {args.repeats})",
                ["backend", "copy at project creation (s)", "push_prelabels (s)",
                 "push / copy", "set_uncertainty (s)"],
                [[b, r["copy_seconds"], r["push_seconds"], r["push_vs_copy"],
                  r["set_uncertainty_seconds"]] for b, r in results.items()])
    path = write_results("prelabel_tasks", {"tasks": args.tasks, "repeats": args.repeats,
                                            "results": results})
    console.print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
