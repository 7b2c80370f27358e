"""Auto-Curate benchmark: selection, validation sets and mislabel ranking on Fashion-MNIST.

Pool = 10,000 Fashion-MNIST training images, test = 2,000 test images (fixed draws), embedded
at 112 px by the built-in model. Every method's picks are scored the same way: a logistic
regression on the picked rows' L2-normalised embeddings, accuracy on the test images. Means
and standard deviations over 3 seeds. Baselines run in the same process: random, k-center
greedy, a TypiClust re-implementation, the full pool, and cleanlab for mislabels.

    .venv/bin/python benchmarks/curation.py            # everything (about 20 minutes, 2 cores)
    .venv/bin/python benchmarks/curation.py --quick    # 1 seed, fewer settings
    .venv/bin/python benchmarks/curation.py --only coldstart,mislabels
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from _common import (
    RESULTS,
    console,
    fashion_mnist_embeddings,
    print_table,
    write_sections,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from labelwise.curate import (
    score_items,
    select_kcenter_greedy,
    select_labeled,
    select_random,
    select_typiclust,
    select_validation,
)
from labelwise.curate.analysis import curate_unlabeled
from labelwise.embeddings.index import knn_graph, l2_normalize

POOL, TEST = 10_000, 2_000
COLD_BUDGETS = (10, 20, 50, 100, 200, 500, 1000, 2500, 5000)
#: Confusable classes for asymmetric noise: T-shirt <-> shirt, pullover <-> coat, and the
#: shoes sneaker -> sandal -> ankle boot -> sneaker.
ASYMMETRIC = {0: 6, 6: 0, 2: 4, 4: 2, 7: 5, 5: 9, 9: 7}
ALL = ("coldstart", "labeled", "validation", "mislabels", "speed")
#: Cold-start methods, in table order.
COLD_METHODS = ("random", "k-center greedy", "TypiClust", "labelwise")

warnings.filterwarnings("ignore", category=ConvergenceWarning)


# -- the common model -------------------------------------------------------------------------
def accuracy(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, yte: np.ndarray) -> float:
    """Test accuracy of logistic regression on the given rows (one class: predicts it)."""
    if len(np.unique(ytr)) < 2:
        return float((yte == ytr[0]).mean())
    model = LogisticRegression(C=10.0, max_iter=1000).fit(Xtr, ytr)
    return float((model.predict(Xte) == yte).mean())


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def fmt(m: float, s: float) -> str:
    return f"{100 * m:.1f} ± {100 * s:.1f}"


def flip_labels(y: np.ndarray, rate: float, kind: str, seed: int) -> np.ndarray:
    """``y`` with labels flipped: uniformly to another class, or to the confusable class."""
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    if kind == "symmetric":
        flip = rng.random(len(y)) < rate
        shift = rng.integers(1, 10, flip.sum())
        noisy[flip] = (y[flip] + shift) % 10
    else:
        mapped = np.isin(y, list(ASYMMETRIC))
        flip = mapped & (rng.random(len(y)) < rate)
        noisy[flip] = [ASYMMETRIC[int(c)] for c in y[flip]]
    return noisy


# -- 1. cold start ----------------------------------------------------------------------------
def bench_coldstart(X, y, Xte, yte, *, budgets, seeds, only=None) -> dict:
    methods = {
        "random": lambda b, s: select_random(X, budget=b, seed=s),
        "k-center greedy": lambda b, s: select_kcenter_greedy(X, budget=b, seed=s),
        "TypiClust": lambda b, s: select_typiclust(X, budget=b, seed=s),
        "labelwise": lambda b, s: curate_unlabeled(X, budget=b, seed=s),
    }
    Xn, Xte_n = l2_normalize(X), l2_normalize(Xte)
    out: dict = {"budgets": list(budgets), "methods": {}}
    for name, pick in methods.items():
        if only is not None and name not in only:
            continue
        rows = {}
        for b in budgets:
            accs, secs = [], []
            for s in seeds:
                t = time.perf_counter()
                idx = pick(b, s)
                secs.append(time.perf_counter() - t)
                accs.append(accuracy(Xn[idx], y[idx], Xte_n, yte))
            rows[str(b)] = {"mean": mean_std(accs)[0], "std": mean_std(accs)[1],
                            "seconds": float(np.median(secs))}
            console.print(f"  {name:16s} {b:5d}: {fmt(*mean_std(accs))}")
        out["methods"][name] = rows
    out["full_pool"] = accuracy(Xn, y, Xte_n, yte)
    return out


# -- 2. labeled selection at 25% ----------------------------------------------------------------
def bench_labeled(X, y, Xte, yte, *, seeds) -> dict:
    Xn, Xte_n = l2_normalize(X), l2_normalize(Xte)
    b = len(X) // 4
    scores = score_items(X, labels=y, seed=0)
    rnd, ours, ours_plain = [], [], []
    for s in seeds:
        idx = select_random(X, budget=b, seed=s)
        rnd.append(accuracy(Xn[idx], y[idx], Xte_n, yte))
        idx = select_labeled(X, y, budget=b, seed=s, mislabel_scores=scores.mislabel,
                             margins=scores.margin)
        ours.append(accuracy(Xn[idx], y[idx], Xte_n, yte))
        idx = select_labeled(X, y, budget=b, seed=s, mislabel_scores=scores.mislabel)
        ours_plain.append(accuracy(Xn[idx], y[idx], Xte_n, yte))
    full = accuracy(Xn, y, Xte_n, yte)
    return {"budget": b, "full_pool": full, "random": mean_std(rnd), "labelwise": mean_std(ours),
            "labelwise_without_margins": mean_std(ours_plain)}


# -- 3. validation set ---------------------------------------------------------------------------
def bench_validation(X, y, *, size, seeds) -> dict:
    rows = []
    for s in seeds:
        noisy = flip_labels(y, 0.10, "symmetric", seed=100 + s)
        wrong = noisy != y
        train = select_random(X, budget=len(X) // 4, seed=s)  # a training split to stay out of
        scores = score_items(X, labels=noisy, seed=s)
        cur = select_validation(noisy, size=size, seed=s, mislabel_scores=scores.mislabel,
                                rarity_scores=scores.rarity, exclude=train)
        free = np.setdiff1d(np.arange(len(X)), train)
        rnd = np.random.default_rng(s).choice(free, size, replace=False)
        rows.append({
            "pool_noise": float(wrong.mean()),
            "curated_noise": float(wrong[cur].mean()),
            "random_noise": float(wrong[rnd].mean()),
            "curated_classes": len(np.unique(noisy[cur])),
            "random_classes": len(np.unique(noisy[rnd])),
            "curated_overlaps_train": int(np.isin(cur, train).sum()),
            "curated_rarity": float(scores.rarity[cur].mean()),
            "random_rarity": float(scores.rarity[rnd].mean()),
        })
    return {"size": size, "runs": rows,
            **{k: mean_std([r[k] for r in rows]) for k in rows[0]}}


# -- 4. mislabel ranking -----------------------------------------------------------------------
def precision_at_k(ranking: np.ndarray, wrong: np.ndarray, k: int) -> float:
    return float(wrong[ranking[:k]].sum() / max(k, 1))


def bench_mislabels(X, y, *, rates, kinds, seeds) -> dict:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from labelwise.curate import out_of_fold_probs

    out = {}
    for kind in kinds:
        for rate in rates:
            runs = []
            for s in seeds:
                noisy = flip_labels(y, rate, kind, seed=1000 * s + int(rate * 100))
                wrong = noisy != y
                k = int(wrong.sum())
                # One out-of-fold model for both: the same logistic regression on the same
                # embeddings; what differs is what each method makes of its probabilities.
                t = time.perf_counter()
                probs = out_of_fold_probs(X, noisy, folds=5, seed=s)
                oof_s = time.perf_counter() - t
                t = time.perf_counter()
                ours = score_items(X, labels=noisy, seed=s, pred_probs=probs).mislabel
                ours_s = time.perf_counter() - t
                t = time.perf_counter()
                quality = get_label_quality_scores(noisy, probs)
                issues = find_label_issues(noisy, probs,
                                           return_indices_ranked_by="self_confidence")
                cl_s = time.perf_counter() - t
                runs.append({
                    "flipped": k,
                    "labelwise_auroc": float(roc_auc_score(wrong, ours)),
                    "labelwise_p_at_k": precision_at_k(np.argsort(-ours, kind="stable"), wrong, k),
                    "cleanlab_auroc": float(roc_auc_score(wrong, 1 - quality)),
                    "cleanlab_p_at_k": precision_at_k(np.argsort(quality, kind="stable"),
                                                      wrong, k),
                    "cleanlab_find_issues_p_at_k": precision_at_k(issues, wrong, k),
                    "cleanlab_find_issues_flagged": len(issues),
                    "out_of_fold_seconds": oof_s, "labelwise_seconds": ours_s,
                    "cleanlab_seconds": cl_s,
                })
            key = f"{kind} {int(rate * 100)}%"
            out[key] = {m: mean_std([r[m] for r in runs]) for m in runs[0]}
            r = out[key]
            console.print(f"  {key:16s} AUROC ours {r['labelwise_auroc'][0]:.3f} "
                          f"cleanlab {r['cleanlab_auroc'][0]:.3f}; P@k ours "
                          f"{r['labelwise_p_at_k'][0]:.3f} cleanlab "
                          f"{max(r['cleanlab_p_at_k'][0], r['cleanlab_find_issues_p_at_k'][0]):.3f}")
    return out


# -- 5. speed at 100,000 -----------------------------------------------------------------------
def bench_speed(X_real, y_real, *, n) -> dict:
    rng = np.random.default_rng(0)
    Xn = l2_normalize(X_real)
    # New points on the data's own manifold: a real embedding moved part of the way towards
    # one of its 10 nearest real neighbours (the same construction as benchmarks/embeddings.py).
    _, nbr = knn_graph(Xn, 10)
    a = rng.integers(0, len(Xn), n)
    b = nbr[a, rng.integers(0, 10, n)]
    lam = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    X = l2_normalize(Xn[a] + lam * (Xn[b] - Xn[a]))
    y = y_real[a]
    steps = {}
    t0 = time.perf_counter()
    scores = score_items(X, labels=y, seed=0)
    steps["scores (clusters, rarity, typicality, duplicates, mislabels)"] = time.perf_counter() - t0
    t = time.perf_counter()
    curate_unlabeled(X, budget=n // 4, seed=0, scores=scores)
    steps["unlabeled selection, 25%"] = time.perf_counter() - t
    t = time.perf_counter()
    select_labeled(scores.reduced, y, budget=n // 4, seed=0, mislabel_scores=scores.mislabel,
                   margins=scores.margin)  # as the service calls it
    steps["labeled selection, 25%"] = time.perf_counter() - t
    t = time.perf_counter()
    select_validation(y, size=n // 10, mislabel_scores=scores.mislabel,
                      rarity_scores=scores.rarity)
    steps["validation set, 10%"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    for step, sec in steps.items():
        console.print(f"  {step}: {sec:.1f} s")
    return {"n": n, "steps": steps, "total_seconds": total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 seed, fewer settings")
    ap.add_argument("--only", default=",".join(ALL))
    ap.add_argument("--methods", default=None,
                    help="cold start: only these methods (comma-separated), others kept from "
                    "the stored results")
    ap.add_argument("--markdown", action="store_true",
                    help="print the stored results as the tables of docs/benchmarks.md")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads((RESULTS / "curation.json").read_text())))
        return
    only = set(args.only.split(","))
    q = args.quick
    seeds = [0] if q else [0, 1, 2]
    X, y, _ = fashion_mnist_embeddings("train", POOL, size=112, seed=0)
    Xte, yte, _ = fashion_mnist_embeddings("test", TEST, size=112, seed=0)
    results: dict = {"pool": POOL, "test": TEST, "size": 112, "seeds": seeds}
    if "coldstart" in only:
        budgets = (10, 50, 100, 2500) if q else COLD_BUDGETS
        wanted = None if args.methods is None else set(args.methods.split(","))
        results["coldstart"] = bench_coldstart(X, y, Xte, yte, budgets=budgets, seeds=seeds,
                                               only=wanted)
        stored = RESULTS / ("curation-quick.json" if q else "curation.json")
        if wanted is not None and stored.exists():  # keep the other methods' rows
            kept = json.loads(stored.read_text()).get("coldstart", {}).get("methods", {})
            merged = {**{m: v for m, v in kept.items() if m not in wanted},
                      **results["coldstart"]["methods"]}
            results["coldstart"]["methods"] = {m: merged[m] for m in COLD_METHODS if m in merged}
    if "labeled" in only:
        results["labeled"] = bench_labeled(X, y, Xte, yte, seeds=seeds)
    if "validation" in only:
        results["validation"] = bench_validation(X, y, size=1000, seeds=seeds)
    if "mislabels" in only:
        results["mislabels"] = bench_mislabels(
            X, y, rates=(0.1, 0.4) if q else (0.1, 0.2, 0.4),
            kinds=("symmetric", "asymmetric"), seeds=seeds)
    if "speed" in only:
        results["speed"] = bench_speed(X, y, n=20_000 if q else 100_000)
    report(results)
    name = "curation" + ("-quick" if q else "")
    path = write_sections(name, results, partial=only != set(ALL))
    console.print(f"results written to {path}")


def markdown(r: dict) -> str:
    """The stored results as Markdown tables (docs/benchmarks.md)."""
    out = []
    if "coldstart" in r:
        c = r["coldstart"]
        budgets = c["budgets"]
        out.append("| method | " + " | ".join(map(str, budgets)) + " |")
        out.append("|---" * (len(budgets) + 1) + "|")
        for name, per in c["methods"].items():
            cells = [fmt(per[str(b)]["mean"], per[str(b)]["std"]) for b in budgets]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append(f"| full pool (10,000) | {100 * c['full_pool']:.1f} |" + " |" * (len(budgets) - 1))
        out.append("")
    if "labeled" in r:
        lab = r["labeled"]
        out += ["| labeled selection, 25% | accuracy | vs full pool |", "|---|---|---|",
                f"| full pool | {100 * lab['full_pool']:.1f} | - |"]
        for key, name in (("random", "random 25%"), ("labelwise", "labelwise 25%"),
                          ("labelwise_without_margins", "labelwise, no margins (typical-first)")):
            out.append(f"| {name} | {fmt(*lab[key])} | "
                       f"{100 * (lab[key][0] - lab['full_pool']):+.1f} |")
        out.append("")
    if "validation" in r:
        v = r["validation"]
        out += ["| validation set | noise rate | classes | mean rarity |", "|---|---|---|---|",
                (f"| curated | {100 * v['curated_noise'][0]:.1f}% | {v['curated_classes'][0]:.0f} "
                f"| {v['curated_rarity'][0]:.3f} |"),
                (f"| random | {100 * v['random_noise'][0]:.1f}% | {v['random_classes'][0]:.0f} | "
                f"{v['random_rarity'][0]:.3f} |"), ""]
    if "mislabels" in r:
        out += [("| noise | flipped | AUROC ours | AUROC cleanlab | P@k ours | P@k cleanlab "
                "scores | P@k cleanlab find_label_issues |"), "|---|---|---|---|---|---|---|"]
        for key, m in r["mislabels"].items():
            out.append(f"| {key} | {m['flipped'][0]:.0f} | {m['labelwise_auroc'][0]:.3f} ± "
                       f"{m['labelwise_auroc'][1]:.3f} | {m['cleanlab_auroc'][0]:.3f} ± "
                       f"{m['cleanlab_auroc'][1]:.3f} | {m['labelwise_p_at_k'][0]:.3f} | "
                       f"{m['cleanlab_p_at_k'][0]:.3f} | {m['cleanlab_find_issues_p_at_k'][0]:.3f} |")
        out.append("")
    if "speed" in r:
        sp = r["speed"]
        out += ["| step (100,000 embeddings) | seconds |", "|---|---|"]
        out += [f"| {k} | {v:.1f} |" for k, v in sp["steps"].items()]
        out += [f"| total | {sp['total_seconds']:.1f} |", ""]
    return "\n".join(out)


def report(results: dict) -> None:
    if "coldstart" in results:
        c = results["coldstart"]
        rows = []
        for name, per in c["methods"].items():
            rows.append([name, *(fmt(per[str(b)]["mean"], per[str(b)]["std"])
                                 for b in c["budgets"])])
        rows.append(["full pool (10,000)", *(f"{100 * c['full_pool']:.1f}" for _ in c["budgets"])])
        print_table("Cold start: test accuracy (%) by number of labels",
                    ["method", *map(str, c["budgets"])], rows)
        rnd, ours = c["methods"]["random"], c["methods"]["labelwise"]
        quarter = str(POOL // 4)
        if quarter in ours:
            gap = c["full_pool"] - rnd[quarter]["mean"]
            closed = (ours[quarter]["mean"] - rnd[quarter]["mean"]) / gap if gap > 0 else 1.0
            console.print(f"25% unlabeled: labelwise closes {closed:.0%} of random's gap to the "
                          "full pool (target >= 50%)")
    if "labeled" in results:
        r = results["labeled"]
        print_table(f"Labeled selection of {r['budget']:,} (25%): test accuracy (%)",
                    ["method", "accuracy", "vs full pool", "target"],
                    [["full pool", f"{100 * r['full_pool']:.1f}", "-", "-"],
                     ["random 25%", fmt(*r["random"]),
                      f"{100 * (r['random'][0] - r['full_pool']):+.1f}", "-"],
                     ["labelwise 25%", fmt(*r["labelwise"]),
                      f"{100 * (r['labelwise'][0] - r['full_pool']):+.1f}", ">= -1.0 (stretch -0.3)"],
                     ["labelwise 25%, no margins", fmt(*r["labelwise_without_margins"]),
                      f"{100 * (r['labelwise_without_margins'][0] - r['full_pool']):+.1f}",
                      "-"]])
    if "validation" in results:
        v = results["validation"]
        print_table(f"Validation set of {v['size']:,} with 10% label noise in the pool",
                    ["set", "noise rate", "classes", "mean rarity", "target"],
                    [["curated", f"{100 * v['curated_noise'][0]:.1f}%",
                      f"{v['curated_classes'][0]:.0f}", f"{v['curated_rarity'][0]:.3f}",
                      "<= 1/3 of the pool's noise, every class"],
                     ["random", f"{100 * v['random_noise'][0]:.1f}%",
                      f"{v['random_classes'][0]:.0f}", f"{v['random_rarity'][0]:.3f}", "-"]])
    if "mislabels" in results:
        rows = []
        for key, r in results["mislabels"].items():
            best_cl = max(r["cleanlab_p_at_k"][0], r["cleanlab_find_issues_p_at_k"][0])
            rows.append([key, f"{r['flipped'][0]:.0f}", f"{r['labelwise_auroc'][0]:.3f}",
                         f"{r['cleanlab_auroc'][0]:.3f}",
                         f"{r['labelwise_auroc'][0] - r['cleanlab_auroc'][0]:+.3f}",
                         f"{r['labelwise_p_at_k'][0]:.3f}", f"{r['cleanlab_p_at_k'][0]:.3f}",
                         f"{r['cleanlab_find_issues_p_at_k'][0]:.3f}",
                         "yes" if r["labelwise_auroc"][0] >= r["cleanlab_auroc"][0] + 0.02
                         and r["labelwise_p_at_k"][0] >= best_cl else "no"])
        print_table("Mislabel ranking (k = number of flipped labels)",
                    ["noise", "flipped", "AUROC ours", "AUROC cleanlab", "diff", "P@k ours",
                     "P@k cleanlab scores", "P@k cleanlab find_label_issues", "target met"], rows)
    if "speed" in results:
        s = results["speed"]
        print_table(f"Curation of {s['n']:,} embeddings (2 cores)", ["step", "seconds"],
                    [*[[k, v] for k, v in s["steps"].items()], ["total", s["total_seconds"]]])


if __name__ == "__main__":
    main()
