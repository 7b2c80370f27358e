"""Auto-Curate kernels: pure functions from embeddings (and labels) to scores and selections.

- ``scores``: ``cluster_embeddings``, ``cluster_sizes``, ``rarity``, ``typicality``.
- ``select``: what to label in an unlabeled pool (``select_unlabeled``) and the baselines
  ``select_random``, ``select_kcenter_greedy``, ``select_typiclust``.
- ``labeled``: a balanced, covering training subset of labeled data (``select_labeled``).
- ``mislabels``: ``mislabel_scores`` and ``out_of_fold_probs``.

docs/algorithms.md ("Auto-Curate kernels") explains the reasoning and references.
"""

from labelwise.curate.labeled import class_quotas, select_labeled
from labelwise.curate.mislabels import mislabel_scores, neighbour_votes, out_of_fold_probs
from labelwise.curate.scores import cluster_embeddings, cluster_sizes, rarity, typicality
from labelwise.curate.select import (
    SELECTORS,
    coverage_radius,
    get_selector,
    select_kcenter_greedy,
    select_random,
    select_typiclust,
    select_unlabeled,
)

__all__ = [
    "SELECTORS",
    "class_quotas",
    "cluster_embeddings",
    "cluster_sizes",
    "coverage_radius",
    "get_selector",
    "mislabel_scores",
    "neighbour_votes",
    "out_of_fold_probs",
    "rarity",
    "select_kcenter_greedy",
    "select_labeled",
    "select_random",
    "select_typiclust",
    "select_unlabeled",
    "typicality",
]
