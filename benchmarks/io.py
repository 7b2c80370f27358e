"""Import/export and listing benchmarks for the foundation (docs/benchmarks.md).

    python benchmarks/io.py                    # 100,000 images / 1,000,000 boxes; 1,000,000 assets
    python benchmarks/io.py --quick            # 10x smaller, for a smoke run
    python benchmarks/io.py --backends sqlite  # skip PostgreSQL

1. COCO import: a generated COCO file (images are tiny placeholder PNG files whose headers
   carry the declared size, so the run measures the annotation path, not pixel decoding;
   images are imported with header checks only, i.e. ``--no-verify``). Side by side: the time
   pycocotools' ``COCO()`` takes just to load the same JSON, the floor for parsing.
2. COCO export of the imported dataset (annotations only, ``--no-images``).
3. Listing a 1,000,000-asset dataset, 100 per page with a tag filter, at random deep cursors
   (keyset pagination): p50/p95 per page.

Each timed step runs in a fresh interpreter so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    console,
    percentile,
    print_table,
    run_isolated,
    write_results,
)

DATA = Path(__file__).parent / "data" / "io"
PG_ADMIN = os.environ.get(
    "LABELWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SIZES = [(640, 480), (480, 640), (800, 600)]


def _png_template(w: int, h: int) -> bytes:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("L", (w, h), 128).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _png_variant(template: bytes, i: int) -> bytes:
    """The template with a tEXt chunk after IHDR: same pixels, distinct bytes (and hash)."""
    text = b"id\x00" + str(i).encode()
    chunk = (struct.pack(">I", len(text)) + b"tEXt" + text
             + struct.pack(">I", zlib.crc32(b"tEXt" + text)))
    return template[:33] + chunk + template[33:]


def generate(n_images: int, n_boxes: int, *, seed: int = 0) -> Path:
    """Write images/ and annotations.json once per size; reuse them on later runs."""
    root = DATA / f"coco_{n_images}_{n_boxes}"
    ann_path = root / "annotations.json"
    if ann_path.exists():
        return ann_path
    import orjson

    console.print(f"generating {n_images:,} placeholder images and {n_boxes:,} boxes in {root} ...")
    tmp = root.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    templates = [_png_template(w, h) for w, h in SIZES]
    images = []
    for i in range(n_images):
        k = i % len(SIZES)
        sub = tmp / "images" / f"{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        name = f"{i // 1000:04d}/{i:07d}.png"
        (tmp / "images" / name).write_bytes(_png_variant(templates[k], i))
        w, h = SIZES[k]
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
    per_image = rng.multinomial(n_boxes, np.full(n_images, 1 / n_images))
    image_idx = np.repeat(np.arange(n_images), per_image)
    wh = np.array(SIZES)[image_idx % len(SIZES)]
    bw = np.round(rng.uniform(4, 200, n_boxes), 2)
    bh = np.round(rng.uniform(4, 200, n_boxes), 2)
    bx = np.round(rng.uniform(0, 1, n_boxes) * (wh[:, 0] - bw), 2)
    by = np.round(rng.uniform(0, 1, n_boxes) * (wh[:, 1] - bh), 2)
    cats = rng.integers(1, 81, n_boxes)
    anns = [
        {"id": j + 1, "image_id": int(image_idx[j]) + 1, "category_id": int(cats[j]),
         "bbox": [float(bx[j]), float(by[j]), float(bw[j]), float(bh[j])],
         "area": float(round(bw[j] * bh[j], 2)), "iscrowd": 0}
        for j in range(n_boxes)
    ]
    coco = {
        "info": {"description": "labelwise io benchmark"},
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": f"class{c:02d}", "supercategory": "thing"}
                       for c in range(1, 81)],
    }
    (tmp / "annotations.json").write_bytes(orjson.dumps(coco))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return ann_path


PYCOCO = """
import json, resource, sys, time, io, contextlib
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    from pycocotools.coco import COCO
    c = COCO(sys.argv[1])
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "annotations": len(c.anns)}))
"""

IMPORT = """
import json, resource, sys, time
import labelwise
ws = labelwise.init(sys.argv[2], database_url=sys.argv[3] or None)
t0 = time.perf_counter()
r = ws.import_dataset("coco", sys.argv[1], dataset="bench", verify_images=False)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "assets": r.assets_added, "annotations": r.annotations_added}))
"""

EXPORT = """
import json, resource, sys, time
import labelwise
ws = labelwise.open_workspace(sys.argv[1], database_url=sys.argv[2] or None)
t0 = time.perf_counter()
r = ws.export_dataset("bench", "coco", sys.argv[3], copy_images=False)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "annotations": r.num_annotations}))
"""


def fresh_pg_database(name: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN)
    with psycopg.connect(host=admin.host, port=admin.port or 5432, user=admin.username,
                         dbname=admin.database, password=admin.password, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    return admin.set(database=name).render_as_string(hide_password=False)


def bench_import_export(ann_path: Path, backends: list[str], work: Path) -> dict:
    out: dict = {}
    floor = run_isolated(PYCOCO, str(ann_path))
    out["pycocotools_load"] = floor
    console.print(f"pycocotools COCO() load: {floor['seconds']:.1f} s, peak {floor['peak_mib']:.0f} MiB")
    for backend in backends:
        url = "" if backend == "sqlite" else fresh_pg_database("labelwise_bench_io")
        ws_dir = work / f"ws-{backend}"
        shutil.rmtree(ws_dir, ignore_errors=True)
        imp = run_isolated(IMPORT, str(ann_path), str(ws_dir), url)
        console.print(f"{backend}: import {imp['seconds']:.1f} s, peak {imp['peak_mib']:.0f} MiB")
        exp = run_isolated(EXPORT, str(ws_dir), url, str(work / f"export-{backend}"))
        console.print(f"{backend}: export {exp['seconds']:.1f} s, peak {exp['peak_mib']:.0f} MiB")
        out[backend] = {"import": imp, "export": exp,
                        "import_vs_pycocotools": imp["seconds"] / floor["seconds"]}
        shutil.rmtree(ws_dir, ignore_errors=True)
    return out


def bench_listing(n_assets: int, backends: list[str], work: Path, *, pages: int = 200) -> dict:
    """Fill a dataset with ``n_assets`` asset rows (and tags) straight through bulk insert."""
    import labelwise
    from labelwise.db.bulk import bulk_insert
    from labelwise.db.models import DatasetRow, LabelSchemaRow

    out = {}
    rng = np.random.default_rng(1)
    for backend in backends:
        url = None if backend == "sqlite" else fresh_pg_database("labelwise_bench_list")
        ws_dir = work / f"list-{backend}"
        shutil.rmtree(ws_dir, ignore_errors=True)
        ws = labelwise.init(ws_dir, database_url=url)
        t0 = time.perf_counter()
        with ws.session() as s, s.begin():
            schema = LabelSchemaRow(name="list")
            ds = DatasetRow(name="list", schema=schema, description="", info={})
            s.add(ds)
            s.flush()
            conn = s.connection()
            bulk_insert(conn, "assets", ("dataset_id", "path", "content_hash", "width", "height",
                                         "format", "size_bytes", "metadata"),
                        ((ds.id, f"img/{i:07d}.jpg", f"{i:064x}", 640, 480, "jpg", 1000, "{}")
                         for i in range(n_assets)))
            first = s.execute(__import__("sqlalchemy").text(
                "SELECT min(id) FROM assets WHERE dataset_id = :d"), {"d": ds.id}).scalar()
            # Tags: every asset one of 10 "shard-k" tags; 5% also "rare".
            rare = rng.random(n_assets) < 0.05
            rows = ((first + i, f"shard-{i % 10}", ds.id) for i in range(n_assets))
            bulk_insert(conn, "asset_tags", ("asset_id", "tag", "dataset_id"), rows)
            bulk_insert(conn, "asset_tags", ("asset_id", "tag", "dataset_id"),
                        ((first + int(i), "rare", ds.id) for i in np.flatnonzero(rare)))
            ds_id = ds.id
        if backend == "postgresql":
            with ws.engine.connect() as c:
                c.exec_driver_sql("ANALYZE")
        fill = time.perf_counter() - t0
        console.print(f"{backend}: filled {n_assets:,} assets in {fill:.1f} s")
        from labelwise.db import queries
        from labelwise.db.queries import encode_cursor

        results = {}
        for label, tag in (("tag filter 'rare' (5%)", "rare"), ("tag filter 'shard-3' (10%)", "shard-3"),
                           ("no filter", None)):
            times = []
            starts = rng.integers(first, first + n_assets, pages)
            starts[: pages // 10] = first + n_assets - 2000  # the deepest pages too
            with ws.session() as s:
                queries.list_assets(s, ds_id, tag=tag, limit=100)  # warm up
                for start in starts:
                    t = time.perf_counter()
                    page = queries.list_assets(s, ds_id, tag=tag, limit=100,
                                               cursor=encode_cursor(int(start)))
                    times.append((time.perf_counter() - t) * 1000)
                    assert page["items"] or start > first + n_assets - 2000
            results[label] = {"p50_ms": percentile(times, 0.5), "p95_ms": percentile(times, 0.95),
                              "pages": pages}
        out[backend] = {"fill_seconds": fill, "n_assets": n_assets, "queries": results}
        ws.close()
        shutil.rmtree(ws_dir, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--boxes", type=int, default=1_000_000)
    ap.add_argument("--assets", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="10x smaller sizes")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--skip", default="", help="comma list of: import, listing")
    args = ap.parse_args()
    if args.quick:
        args.images, args.boxes, args.assets = args.images // 10, args.boxes // 10, args.assets // 10
    backends = [b for b in args.backends.split(",") if b]
    skip = set(args.skip.split(","))
    work = Path(tempfile.mkdtemp(prefix="labelwise-bench-"))
    results: dict = {"sizes": {"images": args.images, "boxes": args.boxes, "assets": args.assets}}
    try:
        if "import" not in skip:
            ann = generate(args.images, args.boxes)
            results["import_export"] = bench_import_export(ann, backends, work)
        if "listing" not in skip:
            results["listing"] = bench_listing(args.assets, backends, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if "import_export" in results:
        ie = results["import_export"]
        floor = ie["pycocotools_load"]
        rows = [["pycocotools COCO() load (floor)", floor["seconds"], floor["peak_mib"], "1.00", "-"]]
        for b in backends:
            imp, exp = ie[b]["import"], ie[b]["export"]
            rows.append([f"labelwise import, {b}", imp["seconds"], imp["peak_mib"],
                         f"{ie[b]['import_vs_pycocotools']:.2f}", "<= 60 s, <= 2048 MiB"])
            rows.append([f"labelwise export COCO, {b}", exp["seconds"], exp["peak_mib"], "-",
                         "<= 30 s"])
        print_table(f"COCO {args.images:,} images / {args.boxes:,} boxes",
                    ["step", "seconds", "peak MiB", "x pycocotools load", "target"], rows)
    if "listing" in results:
        rows = []
        for b, r in results["listing"].items():
            for label, q in r["queries"].items():
                rows.append([b, label, q["p50_ms"], q["p95_ms"], "p95 <= 50 ms"])
        print_table(f"Listing {args.assets:,} assets, 100 per page, random deep cursors",
                    ["backend", "query", "p50 ms", "p95 ms", "target"], rows)
    path = write_results("io" + ("-quick" if args.quick else ""), results)
    console.print(f"results written to {path}")


if __name__ == "__main__":
    main()
