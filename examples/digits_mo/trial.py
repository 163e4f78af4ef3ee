"""A digits MLP reporting three things per epoch: test accuracy, its parameter count, and the
median time of one inference pass over the test set (ms). Used by search_config.yaml."""
from __future__ import annotations

import statistics
import time

import torch
from sklearn.datasets import load_digits  # bundled with scikit-learn: nothing is downloaded
from torch import nn

import gml_ray


def data(split_seed: int = 0):
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    test, train = perm[:360], perm[360:]
    return x[train], y[train], x[test], y[test]


def model(hidden: int, layers: int) -> nn.Module:
    sizes = [64] + [hidden] * layers
    blocks: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        blocks += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*blocks, nn.Linear(sizes[-1], 10))


def latency_ms(net: nn.Module, x: torch.Tensor, repeats: int = 15) -> float:
    """The median wall time of one forward pass over ``x`` (the median: one slow pass, e.g. the
    other job taking the core, does not decide it)."""
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def train(config: dict) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = data()
    net = model(config["hidden"], config["layers"])
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=config["lr"])
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(config["epochs"]):
        net.train()
        order = torch.randperm(len(x_train))
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            loss_fn(net(x_train[idx]), y_train[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            acc = (net(x_test).argmax(1) == y_test).float().mean().item()
        gml_ray.report(test_acc=acc, params=params, latency_ms=latency_ms(net, x_test), step=epoch)
