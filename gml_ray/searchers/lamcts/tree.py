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

from gml_ray.searchers.lamcts.kmeans import kmeans_many
from gml_ray.searchers.lamcts.svm import KernelSVM, fit_svms
from gml_ray.searchers.lamcts.tensors import CLS_DTYPE


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
    # once split: the stacked SVMs of the paths that end here (by label), for in_region
    regions: dict[int, "_Region"] = field(default_factory=dict, repr=False)

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
        self._attempts = 0  # split attempts so far: they seed 2-means
        # Level by level: the nodes of a level split independently of each other, so their
        # 2-means runs and their SVMs are solved together, batched (kmeans.kmeans_many and
        # fit_svms), paying the per-step cost of many small tensor operations once a level.
        level = [self.root]
        while level:
            level = self._split_level([node for node in level if node.n > leaf_size
                                       and node.depth < self.max_depth])

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
        return bool(self._split_level([node]))

    def _split_level(self, nodes: list[Node]) -> list[Node]:
        """Split each of ``nodes`` (none an ancestor of another) that can be split into [good,
        bad] children, all at once; returns the new children."""
        nodes = [node for node in nodes if node.n > 2]
        if not nodes:
            return []
        olds = [self._prev.get(node.key) for node in nodes]
        features = [self.cluster_features(node.idx) for node in nodes]
        # 2-means seeds: one per split attempt, in the order of the attempts
        seeds = [self.seed + self._attempts + i for i in range(len(nodes))]
        self._attempts += len(nodes)
        all_labels = kmeans_many(features, k=2, n_init=[1 if old is not None else 3 for old in olds],
                                 seeds=seeds,
                                 inits=[None if old is None else old.centers for old in olds])
        fits: list[tuple[Node, KernelSVM, torch.Tensor]] = []
        xs, targets, alpha0s = [], [], []
        for node, old, feats, labels in zip(nodes, olds, features, all_labels):
            idx = node.idx
            onehot = torch.nn.functional.one_hot(labels, 2).to(feats.dtype)
            counts = onehot.sum(0)
            v = self.values[idx]
            sums = onehot.T @ torch.cat([feats.to(onehot.dtype), v[:, None].to(onehot.dtype)], 1)
            n0, n1, mean0, mean1 = torch.cat([counts, sums[:, -1] / counts.clamp_min(1)]).tolist()
            if n0 == 0 or n1 == 0:  # 2-means found one cluster (LA-MCTS #12)
                continue
            node.centers = sums[:, :-1] / counts[:, None]
            good_cluster = 0 if mean0 >= mean1 else 1
            target = (labels == good_cluster).long()  # SVM label 1 = the better cluster
            train = self._svm_sample(idx, target)
            if train is not None:  # a large node: the SVM learns from a stratified subsample
                target = target[train]
            node.train_idx = idx if train is None else idx[train]
            alpha0 = None
            if old is not None and old.svm is not None and old.svm.alpha_ is not None:
                full = torch.zeros(self.x.shape[0], dtype=old.svm.alpha_.dtype,
                                   device=self.x.device)
                full[old.train_idx] = old.svm.alpha_
                alpha0 = full[node.train_idx]
            svm = KernelSVM(kernel=self.kernel, gamma=self.gamma)
            fits.append((node, svm, target))
            xs.append(self.x[node.train_idx])
            targets.append(target)
            alpha0s.append(alpha0)
        fit_svms([f[1] for f in fits], xs, targets, alpha0s)
        kids_out: list[Node] = []
        for node, svm, _ in fits:
            idx = node.idx
            predicted = svm.predict(self.x[idx])
            inside = predicted.bool()
            n_good = int(inside.sum())
            if n_good == 0 or n_good == idx.numel():  # the SVM sees no boundary: no split
                node.centers = node.train_idx = None
                continue
            # Bags follow the SVM's regions (not the 2-means labels): a child's samples are in it.
            kids = [self._node(idx[inside], node, 1), self._node(idx[~inside], node, 0)]
            kids.sort(key=lambda k: -k.mean)  # good first: the higher mean, whatever the SVM label
            node.svm, node.kids = svm, kids
            self.splits += 1
            kids_out.extend(kids)
        return kids_out

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


class _Region:
    """The SVMs along a path, stacked: every node's decision on a point in one kernel matrix
    against all their support vectors and one product with a block matrix of dual
    coefficients, instead of a kernel matrix and a product per node."""

    def __init__(self, path: Path) -> None:
        svms = [node.svm for node, _ in path]
        assert all(svm is not None and svm.support_ is not None for svm in svms)
        self.nodes = tuple(node for node, _ in path)
        first = svms[0]
        assert first is not None and first.support_ is not None
        device = first.support_.device
        self.kernel, self.degree, self.coef0 = first.kernel, first.degree, first.coef0
        sv = [svm.support_ for svm in svms if svm is not None and svm.support_ is not None]
        counts = [t.shape[0] for t in sv]
        self.support = torch.cat(sv)  # (S, d)
        self.support_sq = (self.support * self.support).sum(1)
        owner = torch.repeat_interleave(torch.arange(len(svms), device=device),
                                        torch.tensor(counts, device=device))
        gammas = torch.tensor([float(svm.gamma_ or 0.0) for svm in svms if svm is not None],
                              dtype=CLS_DTYPE, device=device)
        self.gamma = gammas[owner]  # (S,): each support vector's node's gamma
        coef = torch.cat([svm.dual_coef_ for svm in svms if svm is not None
                          and svm.dual_coef_ is not None])
        self.weights = torch.zeros(self.support.shape[0], len(svms), dtype=CLS_DTYPE,
                                   device=device)
        self.weights[torch.arange(self.support.shape[0], device=device), owner] = coef
        self.intercept = torch.tensor([svm.intercept_ for svm in svms if svm is not None],
                                      dtype=CLS_DTYPE, device=device)
        self.label = torch.tensor([label for _, label in path], dtype=torch.bool, device=device)

    def contains(self, points: torch.Tensor) -> torch.Tensor:
        x = points.to(CLS_DTYPE)
        if self.kernel == "rbf":
            k = torch.addmm(self.support_sq, x, self.support.T, alpha=-2.0)
            k.add_((x * x).sum(1, keepdim=True)).clamp_min_(0.0).mul_(-self.gamma).exp_()
        else:
            k = x @ self.support.T
            if self.kernel == "poly":
                k = (k * self.gamma + self.coef0) ** self.degree
        decision = torch.addmm(self.intercept, k, self.weights)  # (m, depth)
        return ((decision > 0) == self.label).all(1)


# on the CPU, paths tested with the stacked SVMs of :class:`_Region` up to this many points at a
# time; larger sets go node by node, only the points still inside on to the next node
STACKED_POINTS = 2048


def in_region(path: Path, points: torch.Tensor) -> torch.Tensor:
    """A bool mask: which ``points`` (m, d) lie in the region of the path's leaf.

    Small point sets (and every set on a GPU) are tested at all the path's nodes at once
    (:class:`_Region`, built once per path and kept on its last node); large sets on the CPU node
    by node, dropping the points already outside. The two agree up to floating-point rounding
    (a point within about 1e-6 of a boundary may fall either side)."""
    m = points.shape[0]
    if not path:
        return torch.ones(m, dtype=torch.bool, device=points.device)
    if points.device.type != "cpu" or m <= STACKED_POINTS:
        last, label = path[-1]
        region = last.regions.get(label)
        if region is None or region.nodes != tuple(node for node, _ in path):
            region = last.regions[label] = _Region(path)
        if m <= 4096:
            return region.contains(points)
        return torch.cat([region.contains(points[i:i + 4096]) for i in range(0, m, 4096)])
    mask = torch.ones(m, dtype=torch.bool, device=points.device)
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
