"""Team workflow under load, against a real uvicorn server (docs/benchmarks.md).

    python benchmarks/load.py                        # 60 s, 50 labelers; PostgreSQL and SQLite
    python benchmarks/load.py --seconds 10 --events 100000 --backends sqlite --name load-smoke

1. Load: N simulated labelers (async httpx, one API token each) loop next-task -> save one box
   -> submit for the given seconds against ``uvicorn --factory labelwise.server.app:app_from_env``
   (PostgreSQL with 2 workers, SQLite with 1), once per ``--think`` time:

   - think 1 ("labelers"): each waits 0.5-1.5 s before every request, as people draw between
     saves (faster than people: a task every ~3 s). This phase is the latency figure for
     "N concurrent labelers".
   - think 0 ("saturation"): requests back to back. N requests are always in flight, so by
     Little's law the mean latency is N / throughput: this phase measures throughput
     (requests/s), and its p95 is queueing, not the cost of a request.

   Counted: errors (non-2xx or transport failures), tasks handed to two labelers, the
   database's submit count against the clients', p50/p95/p99 per request kind, and the CPU
   time the server processes and the database backends spent per request (from /proc; on a
   shared machine a steadier figure than latency).
2. Analytics (``--events 0`` skips it): a second project gets ``--events`` task events and ``--labels`` task labels
   (bulk-inserted with ``labelwise.db.bulk``: 11-event histories of assign/start/save/submit/
   reject/resubmit/approve over 30 days, 50 labelers, four tools); each analytics endpoint is
   then called repeatedly over HTTP: p50/p95 per endpoint.

Results: a table, benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).parent))
from _common import console, percentile, print_table, write_results

import labelwise
from labelwise.db.bulk import bulk_insert
from labelwise.db.models import DatasetRow, LabelClassRow, LabelSchemaRow
from labelwise.db.workflow_models import TaskEventRow, TaskRow
from labelwise.workflow import accounts, projects

PG_ADMIN = os.environ.get("LABELWISE_TEST_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_DB = "labelwise_bench_load"
FAST_HASHING = {"LABELWISE_PASSWORD_MEMORY_KIB": "1024", "LABELWISE_PASSWORD_TIME_COST": "1"}
ANALYTICS = ["progress", "throughput", "time-per-label", "rejections", "review-turnaround",
             "auto-label"]


# -- setup ----------------------------------------------------------------------------------
def _pg_admin(*statements: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN)
    conninfo = {"host": admin.host, "port": admin.port or 5432, "user": admin.username,
                "dbname": admin.database, "password": admin.password}
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def fresh_pg_url(name: str = PG_DB) -> str:
    """The URL of a new, empty PostgreSQL database ``name`` (an old one is dropped)."""
    from sqlalchemy.engine import make_url

    drop_pg_database(name)
    _pg_admin(f'CREATE DATABASE "{name}"')
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(name: str = PG_DB) -> None:
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build(ws: labelwise.Workspace, *, n_assets: int, n_labelers: int) -> dict[str, Any]:
    """A dataset of ``n_assets`` placeholder assets, an owner, labelers with tokens, and a
    project "load" with every labeler as a member."""
    with ws.session() as s, s.begin():
        schema = LabelSchemaRow(name="bench", multi_label=False)
        s.add(schema)
        s.flush()
        s.add(LabelClassRow(schema_id=schema.id, name="box", kind="object", tool="bbox",
                            color="#E69F00", position=0))
        ds = DatasetRow(name="bench", description="", schema_id=schema.id, info={})
        s.add(ds)
        s.flush()
        rows = ((ds.id, f"img/{i:07d}.png", f"{i:064x}", 640, 480, "png", 1000, "{}")
                for i in range(n_assets))
        bulk_insert(s.connection(), "assets", ["dataset_id", "path", "content_hash", "width",
                                               "height", "format", "size_bytes", "metadata"],
                    rows)
        dataset_id = ds.id
    policy = accounts.AuthPolicy.from_settings(ws.settings)
    tokens: list[str] = []
    with ws.session() as s:
        owner = accounts.create_user(s, "owner", "bench-Pa55word", role="owner", policy=policy)
        owner_token = accounts.create_token(s, owner, "bench").token
        labelers = []
        for i in range(n_labelers):
            u = accounts.create_user(s, f"labeler{i:02d}", "bench-Pa55word", role="labeler",
                                     policy=policy)
            tokens.append(accounts.create_token(s, u, "bench").token)
            labelers.append(u.id)
    with ws.session() as s, s.begin():
        owner = s.get(accounts.UserRow, owner.id)
        p = projects.create_project(s, owner, name="load", dataset=dataset_id,
                                    import_labels=False)
        for uid in labelers:
            projects.add_member(s, p, s.get(accounts.UserRow, uid), "labeler")
        class_id = projects.project_classes(s, p)[0].id
        project_id = p.id
    return {"dataset_id": dataset_id, "project_id": project_id, "class_id": class_id,
            "owner_id": owner.id, "owner_token": owner_token, "tokens": tokens,
            "labeler_ids": labelers}


# -- the server -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(root: Path, url: str | None, workers: int, port: int) -> subprocess.Popen:
    env = {**os.environ, **FAST_HASHING, "LABELWISE_WORKSPACE": str(root)}
    if url:
        env["LABELWISE_DATABASE_URL"] = url
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "labelwise.server.app:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "120"],
        env=env,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("the server did not answer /api/health within 60 s")


# -- CPU spent, whatever else runs on the machine ----------------------------------------------
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_snapshot(server: subprocess.Popen, ws: labelwise.Workspace) -> dict[str, dict[int, float]]:
    """CPU seconds so far of the server's processes and of the database's backends (PostgreSQL:
    the server processes of connections to this database)."""
    snap = {"server": {p: _cpu_seconds(p) for p in _descendants(server.pid)}, "database": {}}
    if ws.engine.dialect.name == "postgresql":
        with ws.engine.connect() as conn:
            pids = conn.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = "
                                     "current_database() AND pid <> pg_backend_pid()")).all()
        snap["database"] = {p: _cpu_seconds(p) for p in pids}
    return snap


def cpu_used(before: dict[str, dict[int, float]],
             after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds between two snapshots (backends that exited in between are not counted)."""
    return {part: sum(max(0.0, t - before[part].get(p, 0.0)) for p, t in after[part].items())
            for part in after}


# -- load ---------------------------------------------------------------------------------------
async def labeler(client: httpx.AsyncClient, token: str, setup: dict[str, Any],
                  deadline: float, think: float, stats: dict[str, Any]) -> None:
    """One labeler's loop; ``think`` seconds pass between their requests (0: none)."""
    auth = {"Authorization": f"Bearer {token}"}
    pid, cid = setup["project_id"], setup["class_id"]

    async def call(kind: str, method: str, url: str, body: dict | None = None):
        if think:
            await asyncio.sleep(random.uniform(0.5, 1.5) * think)
        t0 = time.perf_counter()
        try:
            r = await client.request(method, url, json=body, headers=auth)
        except httpx.HTTPError as err:
            stats["errors"].append(f"{kind}: {type(err).__name__}")
            return None
        stats["latency"].setdefault(kind, []).append(time.perf_counter() - t0)
        if r.status_code >= 300:
            stats["errors"].append(f"{kind}: {r.status_code} {r.text[:200]}")
            return None
        return r.json()

    while time.perf_counter() < deadline:
        got = await call("next", "POST", f"/api/projects/{pid}/tasks/next")
        if got is None or got["task"] is None:
            return
        task = got["task"]
        stats["handed"].setdefault(task["id"], set()).add(token)
        saved = await call("save", "PUT", f"/api/tasks/{task['id']}/labels", {
            "version": task["version"], "active_seconds": 4.0,
            "labels": [{"class_id": cid, "bbox": [10, 10, 50, 40]}]})
        if saved is None:
            continue
        done = await call("submit", "POST", f"/api/tasks/{task['id']}/submit",
                          {"version": saved["version"], "active_seconds": 1.0})
        if done is not None:
            stats["submits"] += 1


async def run_load(port: int, setup: dict[str, Any], seconds: float,
                   think: float) -> dict[str, Any]:
    stats: dict[str, Any] = {"latency": {}, "errors": [], "handed": {}, "submits": 0}
    limits = httpx.Limits(max_connections=len(setup["tokens"]) + 10)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=30) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(labeler(client, tok, setup, t0 + seconds, think, stats)
                               for tok in setup["tokens"]))
        stats["wall"] = time.perf_counter() - t0
    return stats


def db_counts(ws: labelwise.Workspace, project_id: int) -> dict[str, int]:
    with ws.session() as s:
        events = s.scalar(select(func.count()).where(TaskEventRow.project_id == project_id,
                                                     TaskEventRow.action == "submit"))
        tasks = s.scalar(select(func.count()).where(TaskRow.project_id == project_id,
                                                    TaskRow.status == "submitted"))
    return {"db_submit_events": events, "db_submitted_tasks": tasks}


def summarize(stats: dict[str, Any], workers: int, labelers: int, think: float,
              db: dict[str, int], cpu: dict[str, float]) -> dict[str, Any]:
    all_latency = [v for vs in stats["latency"].values() for v in vs]
    n = max(1, len(all_latency))
    return {
        "workers": workers, "labelers": labelers, "think_seconds": think,
        "seconds": round(stats["wall"], 1), "requests": len(all_latency),
        "errors": len(stats["errors"]), "error_samples": stats["errors"][:5],
        "tasks_handed_out": len(stats["handed"]),
        "handed_to_two_labelers": sum(1 for who in stats["handed"].values() if len(who) > 1),
        "client_submits": stats["submits"], **db,
        "requests_per_s": round(len(all_latency) / stats["wall"], 1),
        "server_cpu_ms_per_request": round(cpu["server"] * 1000 / n, 2),
        "database_cpu_ms_per_request": round(cpu["database"] * 1000 / n, 2),
        "latency_ms": {k: {"p50": percentile(v, 0.5) * 1000,
                           "p95": percentile(v, 0.95) * 1000,
                           "p99": percentile(v, 0.99) * 1000}
                       for k, v in {**stats["latency"], "all": all_latency}.items() if v},
    }


def phase_name(think: float) -> str:
    """Back to back is a saturation test; with think time it stands for people labeling."""
    if not think:
        return "saturation (no think time)"
    return f"labelers (think {0.5 * think:g}-{1.5 * think:g} s)"


# -- analytics data ---------------------------------------------------------------------------
TOOLS = ["bbox", "bbox", "polygon", "keypoints", "category"]


def plant_history(ws: labelwise.Workspace, setup: dict[str, Any], *, n_events: int,
                  n_labels: int) -> int:
    """A project "history" over the dataset with ``n_events`` events and ``n_labels`` labels.

    Each task gets the same 11-event story (assign, start, 3 saves, submit, reject, start,
    save, resubmit, approve) until the events run out; labels are 1 in 3 from a model,
    settled as accepted, edited or rejected.
    """
    with ws.session() as s, s.begin():
        owner = s.get(accounts.UserRow, setup["owner_id"])
        p = projects.create_project(s, owner, name="history", dataset=setup["dataset_id"],
                                    import_labels=False)
        pid = p.id
        class_id = projects.project_classes(s, p)[0].id
        task_ids = list(s.scalars(select(TaskRow.id).where(TaskRow.project_id == pid)
                                  .order_by(TaskRow.id)))
    story = [("assign", "todo", "todo"), ("start", "todo", "in_progress"),
             ("save", "in_progress", "in_progress"), ("save", "in_progress", "in_progress"),
             ("save", "in_progress", "in_progress"), ("submit", "in_progress", "submitted"),
             ("reject", "submitted", "rejected"), ("start", "rejected", "in_progress"),
             ("save", "in_progress", "in_progress"), ("resubmit", "in_progress", "submitted"),
             ("approve", "submitted", "approved")]
    rng = random.Random(0)
    users = setup["labeler_ids"]
    start = datetime(2026, 10, 1, tzinfo=UTC)

    def events():
        for i in range(n_events):
            task_id = task_ids[(i // len(story)) % len(task_ids)]
            action, before, after = story[i % len(story)]
            labeler = users[task_id % len(users)]
            ts = start + timedelta(seconds=rng.randrange(30 * 86400))
            active = cycle = n = tool = per_label = turnaround = None
            if action == "save":
                active = rng.uniform(1, 30)
            elif action in ("submit", "resubmit"):
                n = rng.randint(1, 8)
                cycle = rng.uniform(5, 120)
                tool = rng.choice(TOOLS)
                per_label = cycle / n
            elif action in ("approve", "reject"):
                turnaround = rng.uniform(60, 86400)
            actor = setup["owner_id"] if action in ("approve", "reject", "assign") else labeler
            yield (task_id, pid, actor, labeler, action, before, after, i % len(story) + 1,
                   active, cycle, n, tool, per_label, turnaround, "{}",
                   ts.date().isoformat(), ts.isoformat(sep=" "))

    def labels():
        now = start.isoformat(sep=" ")
        outcomes = ["accepted", "accepted", "edited", "rejected"]
        for i in range(n_labels):
            model = i % 3 == 0
            outcome = outcomes[rng.randrange(4)] if model else None
            yield (task_ids[i % len(task_ids)], pid, class_id, 1.0, 2.0, 30.0, 20.0, False,
                   "model" if model else "human", 0.5 if model else None, f"{i:024x}",
                   f"{i:024x}" if model else None, outcome, outcome == "rejected", now, now)

    cols = ["task_id", "project_id", "user_id", "assignee_id", "action", "from_status",
            "to_status", "version", "active_seconds", "cycle_seconds", "num_labels", "tool",
            "seconds_per_label", "turnaround_seconds", "payload", "day", "created_at"]
    label_cols = ["task_id", "project_id", "class_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
                  "iscrowd", "source", "confidence", "fingerprint", "model_fingerprint",
                  "model_outcome", "deleted", "created_at", "updated_at"]
    with ws.engine.begin() as conn:
        bulk_insert(conn, "task_events", cols, events())
        bulk_insert(conn, "task_annotations", label_cols, labels())
    if ws.engine.dialect.name == "postgresql":
        with ws.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE task_events"))
            conn.execute(text("VACUUM ANALYZE task_annotations"))
            conn.execute(text("VACUUM ANALYZE tasks"))
    else:
        with ws.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return pid


def time_analytics(port: int, token: str, project_id: int, repeats: int) -> dict[str, Any]:
    out = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        for name in ANALYTICS:
            url = f"/api/projects/{project_id}/analytics/{name}"
            first = client.get(url)
            assert first.status_code == 200, first.text
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                r = client.get(url)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
            out[name] = {"p50_ms": percentile(times, 0.5) * 1000,
                         "p95_ms": percentile(times, 0.95) * 1000}
    return out


# -- one backend ------------------------------------------------------------------------------
def run_backend(backend: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    url = fresh_pg_url() if backend == "postgresql" else None
    workers = 2 if backend == "postgresql" else 1
    os.environ.update(FAST_HASHING)
    ws = labelwise.init(root / backend, database_url=url)
    console.print(f"[bold]{backend}[/]: building {args.assets:,} assets, "
                  f"{args.labelers} labelers")
    setup = build(ws, n_assets=args.assets, n_labelers=args.labelers)
    port = free_port()
    server = start_server(root / backend, url, workers, port)
    try:
        loads = []
        for think in args.think:
            before = db_counts(ws, setup["project_id"])
            console.print(f"load: {args.labelers} labelers for {args.seconds:g} s, think time "
                          f"{think:g} s ({workers} worker(s)); load average "
                          f"{os.getloadavg()[0]:.1f}")
            cpu_before = cpu_snapshot(server, ws)
            stats = asyncio.run(run_load(port, setup, args.seconds, think))
            cpu = cpu_used(cpu_before, cpu_snapshot(server, ws))
            after = db_counts(ws, setup["project_id"])
            loads.append(summarize(stats, workers, args.labelers, think,
                                   {k: after[k] - before[k] for k in after}, cpu))
            loads[-1]["load_average"] = round(os.getloadavg()[0], 1)
        analytics, plant_seconds = {}, 0.0
        if args.events:
            console.print(f"analytics: planting {args.events:,} events and {args.labels:,} "
                          "labels")
            t0 = time.perf_counter()
            history = plant_history(ws, setup, n_events=args.events, n_labels=args.labels)
            plant_seconds = time.perf_counter() - t0
            analytics = time_analytics(port, setup["owner_token"], history, args.repeats)
    finally:
        server.terminate()
        server.wait(timeout=30)
        ws.close()
        if url:
            drop_pg_database()
    return {"load": loads, "analytics": analytics, "events": args.events,
            "labels": args.labels, "plant_seconds": round(plant_seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--labelers", type=int, default=50)
    ap.add_argument("--assets", type=int, default=50_000)
    ap.add_argument("--events", type=int, default=1_000_000,
                    help="Task events planted for the analytics section; 0 skips it.")
    ap.add_argument("--labels", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--backends", default="postgresql,sqlite")
    ap.add_argument("--think", default="0,1",
                    help="Think times in seconds between a labeler's requests, one load phase "
                    "each (0: back to back, a saturation test).")
    ap.add_argument("--name", default="load",
                    help="Results file benchmarks/results/NAME.json (smoke runs: load-smoke).")
    args = ap.parse_args()
    args.think = [float(t) for t in args.think.split(",")]
    root = Path(tempfile.mkdtemp(prefix="labelwise-load-"))
    results: dict[str, Any] = {"args": vars(args)}
    try:
        for backend in args.backends.split(","):
            results[backend] = run_backend(backend, args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows, kinds = [], []
    for backend in args.backends.split(","):
        for ld in results[backend]["load"]:
            lat = ld["latency_ms"]
            phase = f"{backend[:6]} x{ld['workers']} {phase_name(ld['think_seconds'])}"
            rows.append([phase, ld["requests"], ld["requests_per_s"],
                         ld["errors"], ld["handed_to_two_labelers"],
                         f"{ld['client_submits']}/{ld['db_submit_events']}",
                         lat["all"]["p50"], lat["all"]["p95"], lat["all"]["p99"],
                         ld["server_cpu_ms_per_request"], ld["database_cpu_ms_per_request"],
                         ld["load_average"]])
            kinds += [[phase, k, v["p50"], v["p95"], v["p99"]] for k, v in lat.items()]
    print_table("load: next -> save -> submit (labelers: the p95 target; saturation: "
                "throughput)",
                ["phase", "requests", "req/s", "errors", "twice", "submits client/db",
                 "p50 ms", "p95 ms", "p99 ms", "server CPU ms/req", "db CPU ms/req",
                 "load avg"], rows)
    print_table("latency per request kind", ["phase", "kind", "p50 ms", "p95 ms", "p99 ms"],
                kinds)
    if not any(results[b]["analytics"] for b in args.backends.split(",")):
        console.print(f"wrote {write_results(args.name, results)}")
        return
    rows = [[backend, name, v["p50_ms"], v["p95_ms"]]
            for backend in args.backends.split(",")
            for name, v in results[backend]["analytics"].items()]
    print_table(f"analytics on {args.events:,} events / {args.labels:,} labels",
                ["backend", "endpoint", "p50 ms", "p95 ms"], rows)
    path = write_results(args.name, results)
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
