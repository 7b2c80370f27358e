"""Embedding engine benchmarks (docs/benchmarks.md).

    python benchmarks/embeddings.py            # everything (about 10 minutes on 2 cores)
    python benchmarks/embeddings.py --quick    # smaller sizes, for a smoke run
    python benchmarks/embeddings.py --only throughput,duplicates,knn,probe

1. Throughput at 224 and 112 px, batch 32: the pipeline (read stored files, decode, resize,
   normalise, ONNX Runtime, store) against the bare ONNX Runtime session on tensors decoded
   beforehand, alternating runs in one process; medians.
2. Near-duplicate recall: 2,000 real Fashion-MNIST test images plus 200 edited copies (90%
   crop, horizontal flip, colour jitter, JPEG re-encode, resize; 40 each). Pair-level recall of
   the planted pairs and precision among flagged pairs that involve a copy, at the default
   threshold; side by side with a perceptual-hash baseline (64-bit dHash, Hamming <= 10).
3. k-NN graph (k = 10) and the 2-D map of 100,000 x 1280 embeddings: 10,000 real
   Fashion-MNIST embeddings extended to 100,000 by interpolating between real neighbours; IVF recall@10 against exact search on
   1,000 queries; the exact search's time on those queries scaled to 100,000 as the baseline.
4. Embedding quality: linear probe (logistic regression) on Fashion-MNIST, 10,000 train /
   2,000 test at 112 px, next to the same probe on raw pixels.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
from _common import console, median, print_table, write_sections  # noqa: E402

import labelwise  # noqa: E402
from labelwise.embeddings.backbones import OnnxEmbedder, get_model  # noqa: E402
from labelwise.embeddings.pipeline import embed_dataset  # noqa: E402
from labelwise.embeddings.preprocess import load_square  # noqa: E402
from labelwise.embeddings.store import drop_embeddings, load_embeddings  # noqa: E402
from labelwise.samples import FASHION_MNIST_CLASSES, load_fashion_mnist  # noqa: E402


def _write_pngs(folder: Path, images: np.ndarray, labels: np.ndarray | None, prefix: str) -> None:
    for i, img in enumerate(images):
        sub = folder / (FASHION_MNIST_CLASSES[labels[i]] if labels is not None else "")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(sub / f"{prefix}-{i:05d}.png")


def _stored_bytes(ws, dataset: str) -> list[bytes]:
    from labelwise.storage import image_key

    out, cursor = [], None
    while True:
        page = ws.list_assets(dataset, limit=1000, cursor=cursor)
        out += [ws.store.get_bytes(image_key(a["content_hash"], a["format"])) for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


# -- 1. throughput ------------------------------------------------------------------------------
def bench_throughput(ws, work: Path, *, n: int, repeats: int) -> dict:
    images, labels = load_fashion_mnist("train")
    _write_pngs(work / "thr", images[:n], labels[:n], "thr")
    ws.import_dataset("classfolders", work / "thr", dataset="throughput")
    blobs = _stored_bytes(ws, "throughput")
    model = get_model(ws)
    embedder = OnnxEmbedder(model)
    out = {}
    for size in (224, 112):
        decoded = np.stack([load_square(b, size=size, name="x", max_pixels=10**9) for b in blobs])
        bare, pipe = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            for i in range(0, len(decoded), 32):
                embedder.embed(decoded[i:i + 32])
            bare.append(len(decoded) / (time.perf_counter() - t))
            drop_embeddings(ws, model=model.name, size=size)
            t = time.perf_counter()
            report = embed_dataset(ws, "throughput", size=size, batch_size=32)
            pipe.append(report.embedded / (time.perf_counter() - t))
            assert report.embedded == len(blobs), report.as_dict()
        out[size] = {"bare_images_per_s": median(bare), "pipeline_images_per_s": median(pipe),
                     "ratio": median(pipe) / median(bare), "runs_bare": bare, "runs_pipeline": pipe,
                     "images": len(blobs)}
        console.print(f"{size}px: bare {median(bare):.1f}/s, pipeline {median(pipe):.1f}/s "
                      f"({median(pipe) / median(bare):.1%})")
    return out


# -- 2. near-duplicates -------------------------------------------------------------------------
EDITS = ("crop90", "flip", "jitter", "jpeg", "resize")


def _edit(img: Image.Image, how: str, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    if how == "crop90":
        dx, dy = int(w * 0.05), int(h * 0.05)
        return img.crop((dx, dy, w - dx, h - dy))
    if how == "flip":
        return ImageOps.mirror(img)
    if how == "jitter":
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
        return ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
    if how == "jpeg":
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=60)
        return Image.open(io.BytesIO(buf.getvalue()))
    if how == "resize":
        return img.resize((w * 2, h * 2), Image.BILINEAR)
    raise ValueError(how)


def _dhash(img: Image.Image) -> int:
    g = np.asarray(img.convert("L").resize((9, 8), Image.BILINEAR), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def _score(pairs: set[tuple[int, int]], planted: dict[int, int], n_orig: int) -> dict:
    truth = {(min(a, b), max(a, b)) for a, b in planted.items()}
    found = len(truth & pairs)
    with_copy = [p for p in pairs if p[0] >= n_orig or p[1] >= n_orig]
    correct = sum(1 for p in with_copy if p in truth)
    # A copy paired with another original o' is consistent when o' is itself flagged as a
    # near-duplicate of the copy's original (Fashion-MNIST has near-identical items).
    between = {p for p in pairs if p[1] < n_orig}
    consistent = 0
    for a, b in with_copy:
        c, other = (b, a) if b >= n_orig else (a, b)
        o = planted.get(c)
        consistent += o is not None and (other == o or (min(o, other), max(o, other)) in between)
    return {"recall": found / len(truth),
            "precision": correct / len(with_copy) if with_copy else 1.0,
            "precision_consistent": consistent / len(with_copy) if with_copy else 1.0,
            "flagged_pairs": len(pairs), "pairs_between_originals": len(pairs) - len(with_copy)}


def bench_duplicates(ws, work: Path, *, n: int, copies: int) -> dict:
    from labelwise.embeddings.duplicates import (
        DEFAULT_THRESHOLD,
        connected_components,
        duplicate_pairs,
    )
    from labelwise.embeddings.index import knn_graph
    from labelwise.embeddings.search import pixel_check
    from labelwise.embeddings.verify import DEFAULT_MIN_NCC, VERIFIED_THRESHOLD

    images, _ = load_fashion_mnist("test")
    rng = np.random.default_rng(0)
    folder = work / "dups"
    folder.mkdir()
    originals = [Image.fromarray(im, mode="L") for im in images[:n]]
    for i, im in enumerate(originals):
        im.save(folder / f"o{i:05d}.png")
    picks = rng.choice(n, size=copies, replace=False)
    planted = {}  # position of copy -> position of original (positions in path order)
    edited = []
    for j, src in enumerate(picks):
        how = EDITS[j % len(EDITS)]
        img = _edit(originals[src], how, rng)
        img.save(folder / f"x{j:05d}-{how}.png")
        edited.append((j, int(src), img))
    ws.import_dataset("folder", folder, dataset="duplicates")
    embed_dataset(ws, "duplicates", size=224)
    ids, X = load_embeddings(ws, "duplicates", size=224)
    # Path order: o00000..o{n-1}, then x00000..: asset ids grow in that order.
    assert len(ids) == n + copies
    for j, src, _img in edited:
        planted[n + j] = src
    dist, nbr = knn_graph(X, 10)

    def evaluate(threshold: float, verify: bool, min_ncc: float = DEFAULT_MIN_NCC) -> dict:
        t = time.perf_counter()
        pair_arr, pair_d = duplicate_pairs(dist, nbr, threshold=threshold)
        if verify:
            pair_arr = pair_arr[pixel_check(ws, ids, min_ncc=min_ncc)(pair_arr, pair_d)]
        seconds = time.perf_counter() - t
        edges = {(int(a), int(b)) for a, b in pair_arr}
        labels = connected_components(len(X), pair_arr)
        grouped = sum(labels[c] == labels[o] for c, o in planted.items()) / len(planted)
        return {"threshold": threshold, "pixel_check": verify, "min_ncc": min_ncc,
                "seconds": seconds,
                "group_recall": float(grouped), **_score(edges, planted, n)}

    result = evaluate(VERIFIED_THRESHOLD, True)
    looser = evaluate(VERIFIED_THRESHOLD, True, min_ncc=0.97)
    embedding_only = evaluate(DEFAULT_THRESHOLD, False)
    loose_only = evaluate(VERIFIED_THRESHOLD, False)
    ours = {(int(a), int(b)) for a, b in duplicate_pairs(dist, nbr, threshold=VERIFIED_THRESHOLD)[0]}
    per_edit = {}
    for how in EDITS:
        sub = {c: o for c, o in planted.items() if EDITS[(c - n) % len(EDITS)] == how}
        per_edit[how] = _score({p for p in ours if p[1] in sub or p[0] in sub}, sub, n)["recall"]
    result["candidate_recall_by_edit"] = per_edit
    # Baseline: dHash with a Hamming threshold, all pairs.
    hashes = [_dhash(im) for im in originals] + [_dhash(img) for _, _, img in edited]
    h = np.array(hashes, dtype=np.uint64)
    base = set()
    for i in range(len(h)):
        x = np.bitwise_xor(h[i + 1:], h[i])
        d = np.array([bin(int(v)).count("1") for v in x])
        for j in np.flatnonzero(d <= 10):
            base.add((i, i + 1 + int(j)))
    baseline = _score(base, planted, n)
    console.print(f"near-duplicates: ours recall {result['group_recall']:.3f} precision "
                  f"{result['precision']:.3f}; dHash recall {baseline['recall']:.3f} precision "
                  f"{baseline['precision']:.3f}")
    return {"ours": result, "looser_pixel_check": looser, "embeddings_only": embedding_only,
            "loose_without_check": loose_only,
            "dhash_baseline": baseline, "images": n, "copies": copies}


# -- 3. k-NN graph and map ----------------------------------------------------------------------
def bench_knn_map(X_real: np.ndarray, *, n: int) -> dict:
    import faiss

    from labelwise.embeddings.index import knn_graph, l2_normalize
    from labelwise.embeddings.projection import project_2d

    rng = np.random.default_rng(0)
    Xn = l2_normalize(X_real.astype(np.float32))
    # New points on the data's own manifold: each is a random real embedding moved a random
    # part of the way towards one of its 10 nearest real neighbours.
    _, real_nbr = knn_graph(Xn, 10)
    a = rng.integers(0, len(Xn), n)
    b = real_nbr[a, rng.integers(0, real_nbr.shape[1], n)]
    lam = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    X = l2_normalize(Xn[a] + lam * (Xn[b] - Xn[a]))
    t = time.perf_counter()
    dist, nbr = knn_graph(X, 10)
    knn_s = time.perf_counter() - t
    # Exact search on 1,000 queries: recall of the IVF graph, and the exact cost scaled to n.
    q = rng.choice(n, 1000, replace=False)
    Xq = l2_normalize(X)
    flat = faiss.IndexFlatIP(X.shape[1])
    flat.add(Xq)
    t = time.perf_counter()
    _, exact = flat.search(Xq[q], 11)
    exact_s = (time.perf_counter() - t) * n / len(q)
    recall = np.mean([len(set(exact[i][exact[i] != q[i]][:10]) & set(nbr[q[i]])) / 10
                      for i in range(len(q))])
    t = time.perf_counter()
    proj = project_2d(X)
    map_s = time.perf_counter() - t
    console.print(f"k-NN graph {n:,}: {knn_s:.1f} s (recall@10 {recall:.3f}); exact would take "
                  f"~{exact_s:.0f} s; map ({proj.method}) {map_s:.1f} s")
    return {"n": n, "knn_seconds": knn_s, "knn_recall_at_10": float(recall),
            "exact_seconds_estimated": exact_s, "map_seconds": map_s, "map_method": proj.method}


# -- 4. linear probe ----------------------------------------------------------------------------
def bench_probe(ws, work: Path, *, n_train: int, n_test: int) -> tuple[dict, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    tr_x, tr_y = load_fashion_mnist("train")
    te_x, te_y = load_fashion_mnist("test")
    rng = np.random.default_rng(0)
    tr = rng.choice(len(tr_x), n_train, replace=False)
    te = rng.choice(len(te_x), n_test, replace=False)
    _write_pngs(work / "probe" / "train", tr_x[tr], tr_y[tr], "train")
    _write_pngs(work / "probe" / "test", te_x[te], te_y[te], "test")
    ws.import_dataset("classfolders", work / "probe" / "train", dataset="probe-train")
    ws.import_dataset("classfolders", work / "probe" / "test", dataset="probe-test")
    t = time.perf_counter()
    r1 = embed_dataset(ws, "probe-train", size=112)
    r2 = embed_dataset(ws, "probe-test", size=112)
    embed_s = time.perf_counter() - t

    def xy(name: str):
        ids, X = load_embeddings(ws, name, size=112)
        labels = {}
        cursor = None
        while True:
            page = ws.list_assets(name, limit=1000, cursor=cursor)
            for a in page["items"]:
                labels[a["id"]] = FASHION_MNIST_CLASSES.index(a["path"].split("/")[0])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        return Xn, np.array([labels[i] for i in ids])

    Xtr, ytr = xy("probe-train")
    Xte, yte = xy("probe-test")
    t = time.perf_counter()
    clf = LogisticRegression(max_iter=2000, C=10.0).fit(Xtr, ytr)
    fit_s = time.perf_counter() - t
    acc = float((clf.predict(Xte) == yte).mean())
    raw = LogisticRegression(max_iter=2000).fit(tr_x[tr].reshape(n_train, -1) / 255.0, tr_y[tr])
    raw_acc = float((raw.predict(te_x[te].reshape(n_test, -1) / 255.0) == te_y[te]).mean())
    console.print(f"linear probe at 112 px: {acc:.3f} (raw pixels {raw_acc:.3f})")
    return ({"accuracy": acc, "raw_pixels_accuracy": raw_acc, "train": n_train, "test": n_test,
             "embed_seconds": embed_s, "images_per_s": (r1.embedded + r2.embedded) / embed_s,
             "fit_seconds": fit_s}, Xtr)


ALL = ("throughput", "duplicates", "knn", "probe")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(ALL))
    args = ap.parse_args()
    only = set(args.only.split(","))
    q = args.quick
    work = Path(tempfile.mkdtemp(prefix="labelwise-bench-emb-"))
    results: dict = {}
    try:
        ws = labelwise.init(work / "ws")
        if "throughput" in only:
            results["throughput"] = bench_throughput(ws, work, n=256 if q else 1024,
                                                     repeats=1 if q else 3)
        if "duplicates" in only:
            results["duplicates"] = bench_duplicates(ws, work, n=400 if q else 2000,
                                                     copies=40 if q else 200)
        X_real = None
        if "probe" in only or "knn" in only:
            results["probe"], X_real = bench_probe(ws, work, n_train=1000 if q else 10_000,
                                                   n_test=200 if q else 2000)
        if "knn" in only:
            results["knn_map"] = bench_knn_map(X_real, n=10_000 if q else 100_000)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if "throughput" in results:
        rows = [[f"{s} px", r["bare_images_per_s"], r["pipeline_images_per_s"],
                 f"{r['ratio']:.1%}", ">= 90%"] for s, r in results["throughput"].items()]
        print_table("Throughput, batch 32 (images/s, median)",
                    ["size", "bare ONNX Runtime", "pipeline", "pipeline / bare", "target"], rows)
    if "duplicates" in results:
        d = results["duplicates"]
        def row(label, r, target="-"):
            return [label, r["recall"], r.get("group_recall", float("nan")), r["precision"],
                    r["precision_consistent"], r["pairs_between_originals"], target]

        rows = [row(f"default: cosine <= {d['ours']['threshold']} + pixel NCC >= "
                    f"{d['ours']['min_ncc']}", d["ours"], ">= 0.95 / >= 0.95"),
                row(f"cosine <= {d['ours']['threshold']} + pixel NCC >= 0.97",
                    d["looser_pixel_check"]),
                row(f"embeddings only, cosine <= {d['embeddings_only']['threshold']}",
                    d["embeddings_only"]),
                row(f"embeddings only, cosine <= {d['loose_without_check']['threshold']}",
                    d["loose_without_check"]),
                row("dHash baseline (Hamming <= 10)", d["dhash_baseline"])]
        print_table(f"Near-duplicates: {d['copies']} planted copies among {d['images']:,} images",
                    ["method", "pair recall", "group recall", "precision",
                     "precision (consistent)", "original pairs", "target"], rows)
    if "knn_map" in results:
        k = results["knn_map"]
        print_table(f"k-NN graph (k=10) and 2-D map of {k['n']:,} x 1280",
                    ["step", "seconds", "note", "target"],
                    [["k-NN graph (IVF)", k["knn_seconds"], f"recall@10 {k['knn_recall_at_10']:.3f}",
                      "<= 60 s"],
                     ["exact search (baseline, estimated)", k["exact_seconds_estimated"], "", "-"],
                     [f"2-D map ({k['map_method']})", k["map_seconds"], "", "<= 60 s"]])
    if "probe" in results:
        p = results["probe"]
        print_table("Linear probe, Fashion-MNIST at 112 px",
                    ["features", "accuracy", "train/test"],
                    [["EfficientNet-Lite0 embeddings", p["accuracy"], f"{p['train']}/{p['test']}"],
                     ["raw pixels (baseline)", p["raw_pixels_accuracy"],
                      f"{p['train']}/{p['test']}"]])
    name = "embeddings" + ("-quick" if q else "")
    path = write_sections(name, results, partial=only != set(ALL))
    console.print(f"results written to {path}")


if __name__ == "__main__":
    main()
