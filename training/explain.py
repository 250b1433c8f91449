"""Per-feature contributions of a LightGBM booster's score, along each row's own path through the trees.

An order's evidence names the features that pushed its risk up most. LightGBM's own TreeSHAP
(``pred_contrib``) gives exact Shapley values but costs about 60 times a predict per row (measured on
the scoring benchmark's model: 15 leaves, 64 trees), which made explaining the at-risk orders the
largest part of scoring. :class:`PathExplainer` gives path attributions instead (Saabas' method, as in
``treeinterpreter``): in every tree, each split on the row's way from the root to its leaf credits its
feature with the change of the expected score from the node to the child the row went to. The
expected score of a node is the mean of its leaves' values weighted by the training rows that reached
them, the same weighting TreeSHAP uses, so both start from the same expected value and both add up to
the row's raw score exactly.

A row's contributions depend only on the leaf it reaches in each tree, so they are precomputed once
per leaf; scoring a row is LightGBM's ``pred_leaf`` (a predict) plus one table lookup per few trees.
Consecutive trees are grouped and their tables summed over every combination of leaves, so a lookup
covers a group. Path attributions are not Shapley values: they favour features split on deep in a
tree. ``tests/unit/test_explain.py`` measures how often both name the same top feature.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

GROUP_ROWS = 256
"""Most rows of one group's table (leaf combinations): with 15 leaves a group holds two trees."""
CHUNK_ROWS = 65_536
"""Rows explained at a time, which bounds the leaf-index matrix to CHUNK_ROWS x trees."""


def _leaf_table(tree: dict, n_features: int) -> tuple[np.ndarray, float]:
    """One tree's contributions per leaf and its expected value.

    Returns:
        A (leaves, n_features) array whose row i is what leaf ``leaf_index`` i credits each feature
        with, and the tree's expected value (its root's).
    """
    root = tree["tree_structure"]
    table = np.zeros((max(int(tree["num_leaves"]), 1), n_features))
    if "split_feature" not in root:  # a tree of one leaf moves nothing
        return table, float(root.get("leaf_value", 0.0))

    def mean(node: dict) -> tuple[float, float]:
        """(expected value, weight) of a node, stored on it as ``_e``."""
        if "split_feature" not in node:
            if node.get("leaf_coeff"):
                # A linear leaf's value depends on the row, not only on the path to it.
                raise ValueError("path attributions need constant leaves; this booster has linear trees")
            weight = float(node.get("leaf_count") or 0)
            node["_e"] = float(node["leaf_value"])
            return node["_e"], weight
        left, w_left = mean(node["left_child"])
        right, w_right = mean(node["right_child"])
        weight = w_left + w_right
        node["_e"] = (left * w_left + right * w_right) / weight if weight > 0 else (left + right) / 2
        return node["_e"], weight

    mean(root)
    stack = [(root, np.zeros(n_features))]
    while stack:
        node, credit = stack.pop()
        if "split_feature" not in node:
            table[int(node["leaf_index"])] = credit
            continue
        feature = int(node["split_feature"])
        for child in (node["left_child"], node["right_child"]):
            passed = credit.copy()
            passed[feature] += child["_e"] - node["_e"]
            stack.append((child, passed))
    return table, root["_e"]


class PathExplainer:
    """Path attributions of one booster's raw score (log-odds for a binary booster).

    Args:
        booster: a trained LightGBM booster with one output per row.
    """

    def __init__(self, booster: lgb.Booster):
        self.booster = booster
        dump = booster.dump_model()
        self.n_features = int(dump["max_feature_idx"]) + 1
        tables, expected = [], 0.0
        for tree in dump["tree_info"]:
            table, value = _leaf_table(tree, self.n_features)
            tables.append(table)
            expected += value
        # The mean raw score of the training rows: where every row's contributions start from.
        self.expected_value = expected
        credited = np.zeros(self.n_features, dtype=bool)
        for table in tables:
            credited |= np.any(table != 0, axis=0)
        # The features some split credits; the others' contributions are always 0.
        self.used = np.flatnonzero(credited)
        self.leaves = [len(t) for t in tables]
        tables = [t[:, self.used] for t in tables]
        # Trees in groups whose leaf combinations fit GROUP_ROWS; each group's table is the sum of its
        # trees' tables over every combination of their leaves, in row-major order of the leaf indices.
        self.groups: list[tuple[int, int, np.ndarray]] = []
        start = 0 if len(self.used) else len(tables)  # no split moves the score: nothing to look up
        while start < len(tables):
            stop, rows = start + 1, len(tables[start])
            while stop < len(tables) and rows * len(tables[stop]) <= GROUP_ROWS:
                rows *= len(tables[stop])
                stop += 1
            combined = tables[start]
            for table in tables[start + 1 : stop]:
                combined = (combined[:, None, :] + table[None, :, :]).reshape(-1, len(self.used))
            self.groups.append((start, stop, combined))
            start = stop

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Per row and feature, the contribution to the raw score; a (rows, features) float array.

        Each row's contributions plus :attr:`expected_value` equal its raw score.
        """
        out = np.zeros((len(matrix), self.n_features))
        if not len(matrix) or not self.groups or not len(self.used):
            return out
        for start in range(0, len(matrix), CHUNK_ROWS):
            chunk = matrix[start : start + CHUNK_ROWS]
            leaves = self.booster.predict(chunk, pred_leaf=True).astype(np.int64).reshape(len(chunk), -1)
            used = np.zeros((len(chunk), len(self.used)))
            for first, stop, table in self.groups:
                index = leaves[:, first]
                for tree in range(first + 1, stop):
                    index = index * self.leaves[tree] + leaves[:, tree]
                used += table[index]
            out[start : start + len(chunk), self.used] = used
        return out
