"""Custom Auto-Label benchmarks for categorization (docs/benchmarks.md).

    python benchmarks/autolabel.py            # everything, 3 seeds (7-15 minutes on 2 cores)
    python benchmarks/autolabel.py --quick    # 1 seed, short active-learning curve
    python benchmarks/autolabel.py --only first100,buckets,active,speed

Data: Fashion-MNIST, a pool of 10,000 training images and a test set of 2,000, embedded at
112 px by EfficientNet-Lite0 (benchmarks/_fashion_embeddings.py, cached).

1. first100: 100 labels chosen by Auto-Curate (``select_unlabeled``) against 100 random
   ones (a random draw leaving a class under 5 labels is drawn again); the model pre-labels
   the other 9,900 pool images. Accuracy of the pre-labels,
   review lift (share of all pre-label errors among the 10% most uncertain, / 0.10) per
   uncertainty score, coverage at 99% precision (the largest least-uncertain share with at
   most 1% errors, measured on the truth), and the easy bucket's share and real error rate.
   The full pool (10,000 labels) on the test set is the ceiling.
2. buckets: the easy bucket with 1,000 random labels: its share, the error rate the model
   promised for it (held-out) and its real error rate on the other 9,000.
3. active: rounds of 250 labels from 250 to 2,500: ``select_next_batch`` (uncertainty +
   diversity) against random batches, both starting from the same 250 curated labels; test
   accuracy after each round against the full pool's.
4. speed: training on 1,000 labels (with cross-validation, calibration, the card and the
   smoothed held-out predictions over the other 9,000 images) and applying a stored model
   (ONNX Runtime) to 100,000 embeddings, without and with neighbour smoothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, console, print_table, write_results
from _fashion_embeddings import CACHE, fashion_embeddings

from labelwise.autolabel.active import select_next_batch
from labelwise.autolabel.classify import (
    MIN_PER_CLASS,
    TrainOptions,
    train_classifier,
)
from labelwise.autolabel.metrics import coverage_at_precision, review_lift
from labelwise.autolabel.store import load_classifier, save_classifier
from labelwise.autolabel.uncertainty import DEFAULT_METHOD, METHODS, uncertainty
from labelwise.curate import select_unlabeled
from labelwise.samples import FASHION_MNIST_CLASSES

CLASSES = list(FASHION_MNIST_CLASSES)


def curated(X: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """Auto-Curate's pick (cached: k-means on 10,000 x 1,280 is the slow part here)."""
    path = CACHE / f"curated-{budget}-seed{seed}.npy"
    if path.exists():
        return np.load(path)
    idx = select_unlabeled(X, budget=budget, seed=seed)
    np.save(path, idx)
    return idx


def random_labels(y: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """``budget`` random positions; a draw leaving a class under 5 labels (which training
    refuses) is drawn again, as a user would label more of that class."""
    rng = np.random.default_rng(seed)
    while True:
        idx = rng.choice(len(y), budget, replace=False)
        if np.bincount(y[idx], minlength=len(CLASSES)).min() >= MIN_PER_CLASS:
            return idx


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "runs": values}


# -- 1. first 100 labels ------------------------------------------------------------------------
def prelabel_scores(model, X_rest: np.ndarray, y_rest: np.ndarray) -> dict:
    P = model.prelabel_proba(X_rest)  # what `apply` stores: smoothed over neighbours
    correct = P.argmax(axis=1) == y_rest
    P_alone = model.predict_proba(X_rest)  # the head alone, image by image
    alone_correct = P_alone.argmax(axis=1) == y_rest
    u = model.uncertainty(P)
    names = model.buckets.assign(u)
    easy = names == "easy"
    return {
        "accuracy": float(correct.mean()),
        "accuracy_unsmoothed": float(alone_correct.mean()),
        "review_lift_unsmoothed": review_lift(model.uncertainty(P_alone), alone_correct),
        "review_lift": {m: review_lift(uncertainty(P, method=m), correct) for m in METHODS},
        "coverage_at_99": coverage_at_precision(u, correct, precision=0.99),
        "easy_share": float(easy.mean()),
        "easy_error": float((~correct[easy]).mean()) if easy.any() else None,
        "easy_error_promised": model.buckets.held_out["easy"].estimated_error,
        "card_accuracy": model.card.accuracy,
        "training_seconds": model.card.training_seconds,
    }


def bench_first100(data: dict, seeds: list[int]) -> dict:
    X, y = data["X_pool"], data["y_pool"]
    runs: dict[str, list[dict]] = {"curate": [], "random": []}
    for seed in seeds:
        picks = {"curate": curated(X, 100, seed),
                 "random": random_labels(y, 100, seed)}
        for how, idx in picks.items():
            rest = np.setdiff1d(np.arange(len(X)), idx)
            model = train_classifier(X[idx], y[idx], classes=CLASSES, X_unlabeled=X[rest],
                                     options=TrainOptions(seed=seed))
            r = prelabel_scores(model, X[rest], y[rest])
            runs[how].append(r)
            console.print(f"seed {seed} {how}-100: pre-label accuracy {r['accuracy']:.3f}, "
                          f"lift {r['review_lift'][DEFAULT_METHOD]:.2f}, "
                          f"coverage@99 {r['coverage_at_99']:.3f}")
    out = {}
    for how, rs in runs.items():
        out[how] = {
            "accuracy": mean_std([r["accuracy"] for r in rs]),
            "accuracy_unsmoothed": mean_std([r["accuracy_unsmoothed"] for r in rs]),
            "review_lift_unsmoothed": mean_std([r["review_lift_unsmoothed"] for r in rs]),
            "review_lift": {m: mean_std([r["review_lift"][m] for r in rs]) for m in METHODS},
            "coverage_at_99": mean_std([r["coverage_at_99"] for r in rs]),
            "easy_share": mean_std([r["easy_share"] for r in rs]),
            "easy_error": [r["easy_error"] for r in rs],
            "easy_error_promised": [r["easy_error_promised"] for r in rs],
            "card_accuracy": mean_std([r["card_accuracy"] for r in rs]),
            "training_seconds": mean_std([r["training_seconds"] for r in rs]),
        }
    return out


def bench_buckets(data: dict, seeds: list[int], *, n: int) -> dict:
    """The easy bucket with ``n`` random labels: its share of the rest and its real error."""
    X, y = data["X_pool"], data["y_pool"]
    runs = []
    for seed in seeds:
        idx = random_labels(y, n, seed)
        rest = np.setdiff1d(np.arange(len(X)), idx)
        model = train_classifier(X[idx], y[idx], classes=CLASSES, X_unlabeled=X[rest],
                                 options=TrainOptions(seed=seed))
        r = prelabel_scores(model, X[rest], y[rest])
        runs.append(r)
        console.print(f"seed {seed} random-{n}: accuracy {r['accuracy']:.3f}, easy share "
                      f"{r['easy_share']:.3f} (real error {r['easy_error']}, promised "
                      f"{r['easy_error_promised']}), coverage@99 {r['coverage_at_99']:.3f}")
    return {"labels": n, "runs": runs}


def full_pool(data: dict) -> dict:
    model = train_classifier(data["X_pool"], data["y_pool"], classes=CLASSES,
                             X_unlabeled=data["X_test"])
    acc = float((model.predict(data["X_test"]) == data["y_test"]).mean())
    console.print(f"full pool (10,000 labels): test accuracy {acc:.3f} ({model.card.head})")
    return {"test_accuracy": acc, "head": model.card.head,
            "training_seconds": model.card.training_seconds}


# -- 2. active learning -------------------------------------------------------------------------
def active_curve(data: dict, *, seed: int, strategy: str, start: int, step: int, stop: int,
                 options: TrainOptions) -> list[dict]:
    X, y, Xt, yt = data["X_pool"], data["y_pool"], data["X_test"], data["y_test"]
    labeled = curated(X, start, seed)
    rng = np.random.default_rng(seed)
    curve = []
    while True:
        rest = np.setdiff1d(np.arange(len(X)), labeled)
        model = train_classifier(X[labeled], y[labeled], classes=CLASSES, X_unlabeled=X[rest],
                                 options=options)
        acc = float((model.predict(Xt) == yt).mean())
        curve.append({"labels": len(labeled), "test_accuracy": acc})
        console.print(f"seed {seed} {strategy}: {len(labeled)} labels -> {acc:.3f}")
        if len(labeled) >= stop:
            return curve
        if strategy == "active":
            # the head's own uncertainty, as `autolabel next` uses (smoothed scores picked
            # batches 0.3 points worse at 2,500 labels: 0.875 against 0.878, within noise)
            u = model.uncertainty(model.predict_proba(X[rest]))
            new = rest[select_next_batch(X[rest], u, budget=step, seed=seed,
                                         X_labeled=X[labeled])]
        else:
            new = rng.choice(rest, step, replace=False)
        labeled = np.concatenate([labeled, new])


def bench_active(data: dict, seeds: list[int], *, stop: int, full: float) -> dict:
    options = TrainOptions(head="linear")
    curves = {s: [active_curve(data, seed=seed, strategy=s, start=250, step=250, stop=stop,
                               options=options) for seed in seeds]
              for s in ("active", "random")}
    out = {"full_pool_accuracy": full, "head": "linear (l2 chosen per round)", "curves": {}}
    for s, cs in curves.items():
        points = []
        for i, p in enumerate(cs[0]):
            accs = [c[i]["test_accuracy"] for c in cs]
            points.append({"labels": p["labels"], **mean_std(accs)})
        out["curves"][s] = points
    return out


# -- 3. speed -----------------------------------------------------------------------------------
def bench_speed(data: dict, *, n_apply: int) -> dict:
    X, y = data["X_pool"], data["y_pool"]
    idx = np.random.default_rng(0).choice(len(X), 1000, replace=False)
    warm = np.random.default_rng(1).choice(len(X), 200, replace=False)
    train_classifier(X[warm], y[warm], classes=CLASSES)  # first use loads torch's kernels
    rest = np.setdiff1d(np.arange(len(X)), idx)
    times = []
    for _ in range(3):  # as the service trains: the other 9,000 images for smoothing
        t = time.perf_counter()
        model = train_classifier(X[idx], y[idx], classes=CLASSES, X_unlabeled=X[rest])
        times.append(time.perf_counter() - t)
    reps = -(-n_apply // len(X))
    noise = np.random.default_rng(2).normal(0, 0.01, size=(len(X) * reps, X.shape[1]))
    X_big = (np.tile(X, (reps, 1)) * (1 + noise)).astype(np.float32)[:n_apply]
    folder = Path(tempfile.mkdtemp(prefix="labelwise-bench-autolabel-"))
    try:
        stored = load_classifier(save_classifier(folder / "fashion", model).parent)
        stored.apply(X_big[:1000])  # session warm-up
        apply_times, smooth_times = [], []
        for _ in range(3):
            t = time.perf_counter()
            out = stored.apply(X_big, smooth=False)
            apply_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            smoothed = stored.apply(X_big)
            smooth_times.append(time.perf_counter() - t)
        assert len(out.labels) == len(smoothed.labels) == n_apply
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    console.print(f"train 1,000 labels: {statistics.median(times):.1f} s; apply to "
                  f"{n_apply:,}: {statistics.median(apply_times):.2f} s, with neighbour "
                  f"smoothing {statistics.median(smooth_times):.2f} s")
    return {"train_1000_seconds": mean_std(times), "apply_rows": n_apply,
            "apply_seconds": mean_std(apply_times),
            "apply_smoothed_seconds": mean_std(smooth_times), "head": model.card.head}


ALL = ("first100", "buckets", "active", "speed")


def report(results: dict) -> None:
    if "first100" in results:
        f = results["first100"]
        rows = []
        for how in ("curate", "random"):
            r = f[how]
            lift = r["review_lift"][DEFAULT_METHOD]
            rows.append([f"{how}-100", f"{r['accuracy']['mean']:.3f} ± {r['accuracy']['std']:.3f}",
                         f"{lift['mean']:.2f} ± {lift['std']:.2f}",
                         f"{r['coverage_at_99']['mean']:.3f}",
                         f"{r['easy_share']['mean']:.3f}",
                         ", ".join("-" if e is None else f"{e:.3f}" for e in r["easy_error"])])
        if "full_pool" in results:
            rows.append(["full pool (10,000), test set",
                         f"{results['full_pool']['test_accuracy']:.3f}", "", "", "", ""])
        print_table("First 100 labels: pre-labels of the other 9,900 (mean ± std over seeds)",
                    ["labels", "accuracy (>= 0.80)", "review lift (>= 3)", "coverage@99%",
                     "easy share", "easy error per seed"], rows)
        lifts = [[m, *(f"{f[h]['review_lift'][m]['mean']:.2f}" for h in ("curate", "random"))]
                 for m in METHODS]
        print_table("Review lift by uncertainty score", ["score", "curate-100", "random-100"],
                    lifts)
        print_table("Without neighbour smoothing (the head alone)",
                    ["labels", "accuracy", "review lift"],
                    [[f"{h}-100", f"{f[h]['accuracy_unsmoothed']['mean']:.3f}",
                      f"{f[h]['review_lift_unsmoothed']['mean']:.2f}"]
                     for h in ("curate", "random")])
    if "buckets" in results:
        b = results["buckets"]
        rows = [[i, f"{r['accuracy']:.3f}", f"{r['easy_share']:.3f}",
                 "-" if r["easy_error"] is None else f"{r['easy_error']:.4f}",
                 "-" if r["easy_error_promised"] is None else f"{r['easy_error_promised']:.4f}",
                 f"{r['coverage_at_99']:.3f}"] for i, r in enumerate(b["runs"])]
        print_table(f"Easy bucket with {b['labels']:,} random labels (pre-labels of the rest)",
                    ["seed", "accuracy", "easy share", "real error", "promised (<= 0.01)",
                     "coverage@99% (oracle)"], rows)
    if "active" in results:
        a = results["active"]
        rows = [[p["labels"], f"{p['mean']:.4f}", f"{q['mean']:.4f}",
                 f"{a['full_pool_accuracy'] - p['mean']:+.4f}"]
                for p, q in zip(a["curves"]["active"], a["curves"]["random"], strict=True)]
        print_table(f"Active rounds, test accuracy (full pool {a['full_pool_accuracy']:.4f})",
                    ["labels", "active", "random", "full - active"], rows)
    if "speed" in results:
        s = results["speed"]
        print_table("Speed (2 cores)", ["step", "seconds", "target"],
                    [["train on 1,000 labels", s["train_1000_seconds"]["mean"], "<= 10"],
                     [f"apply to {s['apply_rows']:,} embeddings", s["apply_seconds"]["mean"],
                      "<= 5"],
                     ["  with neighbour smoothing", s["apply_smoothed_seconds"]["mean"],
                      "<= 5"]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(ALL))
    args = ap.parse_args()
    only = set(args.only.split(","))
    seeds = [0] if args.quick else [0, 1, 2]
    data = fashion_embeddings()
    results: dict = {}
    if "first100" in only or "active" in only:
        results["full_pool"] = full_pool(data)
    if "first100" in only:
        results["first100"] = bench_first100(data, seeds)
    if "buckets" in only:
        results["buckets"] = bench_buckets(data, seeds, n=1000)
    if "active" in only:
        results["active"] = bench_active(data, seeds, stop=750 if args.quick else 2500,
                                         full=results["full_pool"]["test_accuracy"])
    if "speed" in only:
        results["speed"] = bench_speed(data, n_apply=20_000 if args.quick else 100_000)
    report(results)
    name = "autolabel" + ("-quick" if args.quick else "")
    previous = RESULTS / f"{name}.json"
    if only != set(ALL) and previous.exists():  # a partial run updates its sections only
        kept = json.loads(previous.read_text())
        kept.pop("machine", None)
        results = {**kept, **results}
    console.print(f"results written to {write_results(name, results)}")


if __name__ == "__main__":
    main()
