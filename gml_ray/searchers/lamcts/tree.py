"""The LA-MCTS tree: recursive good/bad splits of the samples, and UCB selection of a leaf.

The tree is rebuilt from every sample each iteration. A node with more than ``leaf_size``
samples is split in two by 2-means on (x, value), then a kernel SVM learns the boundary in x, so
each child owns a region of the box (where the SVM predicts its label). Points in [0, 1]^d,
values to *maximise*.

Three pitfalls of the published code are handled on purpose:

* 2-means may put every sample in one cluster (LA-MCTS issue #12): the node is a leaf.
* The published children's bags follow the 2-means labels while their regions follow the SVM,
  so a child can hold samples outside its own region and the "bad" child can hold better points
  (issue #14). Here the bags follow the SVM's predictions, so every sample lies in its child's
  region, and the child called good is the one whose bag has the higher mean value.
* Unscaled 2-means on (x, value) splits by value alone whenever rewards are large numbers (a
  MuJoCo return of 300 against coordinates in [-1, 1]). Here the value is standardised and
  weighted to carry as much variance as all coordinates together, so the split is the same
  whatever the reward's units, and both the location and the value shape it.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import torch

from .classifiers import KernelSVM, kmeans


@dataclass(eq=False)
class Node:
    """A set of samples (indices into the tree's points) and, once split, its two children."""

    idx: torch.Tensor
    mean: float
    parent: "Node | None" = None
    label: int = -1  # the SVM label of the parent that defines this node's region (-1: root)
    svm: KernelSVM | None = None  # set once split: predicts the label of a point's child
    kids: list["Node"] = field(default_factory=list)  # [good, bad] once split
    key: tuple[int, ...] = ()  # the SVM labels from the root down to this node
    centers: torch.Tensor | None = None  # once split: the 2-means centres (2, d + 1)
    train_idx: torch.Tensor | None = None  # once split: the samples its SVM learnt from

    @property
    def n(self) -> int:
        return int(self.idx.numel())

    @property
    def is_leaf(self) -> bool:
        return not self.kids

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1


Path = list[tuple[Node, int]]  # (a split node, the label of the child taken)


class Tree:
    """Builds the tree over ``x`` (n, d) in [0, 1]^d with ``values`` (n,) to maximise.

    Args:
        leaf_size: a node with more samples than this is split (when it can be).
        kernel, gamma: the SVM's kernel (linear, poly, rbf) and gamma (auto, scale).
        Cp: the exploration weight of UCB, in the values' units.
        seed: seeds 2-means and the tie-breaks of selection.
    """

    max_depth = 30  # a guard: a pathological SVM could otherwise peel one sample per level
    # The SVM of a node with more samples learns from this many (stratified): its dual costs
    # O(n^2) memory and time per step, and past a few hundred points in [0, 1]^d the boundary
    # between two 2-means clusters barely moves (the published code fits every sample: seconds
    # per tree at 2,000). Every sample is still assigned to a child by the SVM's prediction.
    svm_points = 300

    def __init__(self, x: torch.Tensor, values: torch.Tensor, leaf_size: int = 20,
                 kernel: str = "rbf", gamma: str = "auto", Cp: float = 1.0, seed: int = 0,
                 prev: "Tree | None" = None) -> None:
        self.x, self.values = x, values
        self.leaf_size, self.kernel, self.gamma, self.Cp = leaf_size, kernel, gamma, Cp
        self.seed = seed
        self._rng = random.Random(seed)
        # A warm start from the previous iteration's tree (samples only ever appended, so its
        # indices are still valid): a node at the same position starts 2-means from the old
        # centres (next to one k-means++ run; the lower inertia wins) and the SVM from the old
        # dual variables. Same splits up to the solvers' tolerance, a fraction of the steps.
        self._prev = {} if prev is None else {n.key: n for n in prev.nodes if not n.is_leaf}
        self.root = self._node(torch.arange(x.shape[0], device=x.device), None, -1)
        self.splits = 0
        todo = [self.root]
        while todo:
            node = todo.pop()
            if node.n > leaf_size and node.depth < self.max_depth and self.split(node):
                todo.extend(node.kids)

    def _node(self, idx: torch.Tensor, parent: Node | None, label: int) -> Node:
        mean = float(self.values[idx].mean()) if idx.numel() else -math.inf
        key = () if parent is None else parent.key + (label,)
        return Node(idx=idx, mean=mean, parent=parent, label=label, key=key)

    # ---- splitting -----------------------------------------------------------------------------

    def cluster_features(self, idx: torch.Tensor) -> torch.Tensor:
        """(x, scaled value) for 2-means: the value column's variance equals the sum of x's."""
        x, v = self.x[idx], self.values[idx]
        std = v.std()
        if not torch.isfinite(std) or std <= 0:
            return torch.cat([x, torch.zeros_like(v)[:, None]], dim=1)
        weight = x.var(dim=0).sum().clamp_min(1e-12).sqrt()
        return torch.cat([x, ((v - v.mean()) / std * weight)[:, None]], dim=1)

    def split(self, node: Node) -> bool:
        """Split ``node`` into [good, bad] children; False (and no change) when it cannot be."""
        if node.n <= 2:
            return False
        idx = node.idx
        old = self._prev.get(node.key)
        features = self.cluster_features(idx)
        labels = kmeans(features, k=2, n_init=1 if old is not None else 3,
                        seed=self.seed + self.splits, init=None if old is None else old.centers)
        if torch.unique(labels).numel() < 2:  # 2-means found one cluster (LA-MCTS #12)
            return False
        onehot = torch.nn.functional.one_hot(labels, 2).to(features.dtype)
        node.centers = (onehot.T @ features) / onehot.sum(0)[:, None]
        v = self.values[idx]
        good_cluster = 0 if v[labels == 0].mean() >= v[labels == 1].mean() else 1
        target = (labels == good_cluster).long()  # SVM label 1 = the better cluster
        train = self._svm_sample(idx, target)
        if train is not None:  # a large node: the SVM learns from a stratified subsample
            target = target[train]
        node.train_idx = idx if train is None else idx[train]
        alpha0 = None
        if old is not None and old.svm is not None and old.svm.alpha_ is not None:
            full = torch.zeros(self.x.shape[0], dtype=old.svm.alpha_.dtype, device=self.x.device)
            full[old.train_idx] = old.svm.alpha_
            alpha0 = full[node.train_idx]
        svm = KernelSVM(kernel=self.kernel, gamma=self.gamma).fit(self.x[node.train_idx], target,
                                                                  alpha0)
        predicted = svm.predict(self.x[idx])
        if torch.unique(predicted).numel() < 2:  # the SVM sees no boundary: nothing to split
            return False
        # Bags follow the SVM's regions (not the 2-means labels), so a child's samples are in it.
        kids = [self._node(idx[predicted == lab], node, lab) for lab in (1, 0)]
        kids.sort(key=lambda k: -k.mean)  # good first: the higher mean, whatever the SVM label
        node.svm, node.kids = svm, kids
        self.splits += 1
        return True

    def _svm_sample(self, idx: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
        """Positions of at most ``svm_points`` samples, each class in proportion (at least one
        of each), or None when the node is small enough to learn from whole. Which samples is
        fixed by their index (a low-discrepancy priority), so consecutive trees share most of
        them and the SVM's warm start applies."""
        n = target.numel()
        if n <= self.svm_points:
            return None
        priority = (idx.to(torch.float64) * 0.6180339887498949) % 1.0
        keep = []
        for lab in (0, 1):
            pos = (target == lab).nonzero().squeeze(1)
            take = max(1, round(self.svm_points * pos.numel() / n))
            keep.append(pos[torch.topk(priority[pos], take, largest=False).indices])
        return torch.cat(keep).sort().values

    # ---- selection -------------------------------------------------------------------------------

    def ucb(self, node: Node) -> float:
        """``mean + 2 Cp sqrt(2 sqrt(n_parent) / n)`` (the published code's form); inf at the root."""
        if node.parent is None or node.n == 0:
            return math.inf
        return node.mean + 2 * self.Cp * math.sqrt(2 * math.sqrt(node.parent.n) / node.n)

    def select(self) -> tuple[Node, Path]:
        """Descend from the root by the larger UCB (ties at random) to a leaf; its path."""
        node, path = self.root, []
        while not node.is_leaf:
            scores = [self.ucb(k) for k in node.kids]
            best = max(scores)
            kid = self._rng.choice([k for k, s in zip(node.kids, scores) if s == best])
            path.append((node, kid.label))
            node = kid
        return node, path

    @property
    def nodes(self) -> list[Node]:
        out, todo = [], [self.root]
        while todo:
            node = todo.pop()
            out.append(node)
            todo.extend(node.kids)
        return out

    @property
    def leaves(self) -> list[Node]:
        out, todo = [], [self.root]
        while todo:
            node = todo.pop()
            if node.is_leaf:
                out.append(node)
            else:
                todo.extend(node.kids)
        return out


def in_region(path: Path, points: torch.Tensor) -> torch.Tensor:
    """A bool mask: which ``points`` (m, d) lie in the region of the path's leaf."""
    mask = torch.ones(points.shape[0], dtype=torch.bool, device=points.device)
    if points.device.type != "cpu":
        # on a GPU, test every point at every node: more arithmetic, but no host read per node
        for node, label in path:
            assert node.svm is not None
            mask &= node.svm.predict(points) == label
        return mask
    for node, label in path:  # on the CPU, only the points still inside go on to the next node
        if not mask.any():
            break
        assert node.svm is not None
        rows = mask.nonzero().squeeze(1)
        mask[rows] = node.svm.predict(points[rows]) == label
    return mask


def describe(tree: Tree) -> list[dict[str, Any]]:
    """The leaves as plain dicts (depth, n, mean), for logs and tests."""
    return [{"depth": leaf.depth, "n": leaf.n, "mean": leaf.mean} for leaf in tree.leaves]
