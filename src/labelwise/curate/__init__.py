"""Auto-Curate kernels: pure functions from embeddings (and labels) to scores and selections.

- ``scores``: ``cluster_embeddings``, ``cluster_sizes``, ``rarity``, ``typicality``.
- ``select``: what to label in an unlabeled pool (``select_unlabeled``) and the baselines
  ``select_random``, ``select_kcenter_greedy``, ``select_typiclust``.
- ``labeled``: a balanced, covering training subset of labeled data (``select_labeled``).
- ``mislabels``: ``mislabel_scores`` and ``out_of_fold_probs``.
- ``validation``: a clean validation set (``select_validation``).
- ``analysis``: every score of a pool in one pass (``score_items``) and the selection the
  service runs on it (``curate_unlabeled``).

docs/algorithms.md ("Auto-Curate kernels") explains the reasoning and references.
"""

from labelwise.curate.analysis import ItemScores, curate_unlabeled, score_items
from labelwise.curate.labeled import class_quotas, select_labeled
from labelwise.curate.mislabels import mislabel_scores, neighbour_votes, out_of_fold_probs
from labelwise.curate.scores import (
    cluster_embeddings,
    cluster_sizes,
    rarity,
    reduce_dimensions,
    typicality,
)
from labelwise.curate.select import (
    SELECTORS,
    coverage_radius,
    get_selector,
    select_kcenter_greedy,
    select_random,
    select_typiclust,
    select_unlabeled,
)
from labelwise.curate.validation import select_validation

__all__ = [
    "SELECTORS",
    "ItemScores",
    "class_quotas",
    "cluster_embeddings",
    "cluster_sizes",
    "coverage_radius",
    "curate_unlabeled",
    "get_selector",
    "mislabel_scores",
    "neighbour_votes",
    "out_of_fold_probs",
    "rarity",
    "reduce_dimensions",
    "score_items",
    "select_kcenter_greedy",
    "select_labeled",
    "select_random",
    "select_typiclust",
    "select_unlabeled",
    "select_validation",
    "typicality",
]
