"""Train a small MLP on scikit-learn's bundled 8x8 digits and report the test accuracy.

Run by gml-ray (see search_config.yaml), or by hand:

    python train.py --config train_config.yaml --batch-size 64 --hidden 64 --lr 0.01

Run by hand, gml_ray's SummaryWriter writes its scalars to ./gml_scalars/digits.jsonl and warns
once that it is not running under gml-ray; that is expected.
"""
from __future__ import annotations

import argparse
import os
import time

import torch
import yaml
from sklearn.datasets import load_digits  # bundled with scikit-learn: nothing is downloaded
from torch import nn

import gml_ray
from gml_ray import SummaryWriter


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="MLP on sklearn digits (gml-ray Quickstart)")
    p.add_argument("--config", required=True, help="training config (YAML): epochs, optimizer, ...")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64, help="hidden units")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate")
    return p.parse_args()


def load_data(test_fraction: float, split_seed: int):
    """The digits as float tensors, split the same way every run (``split_seed`` fixes it)."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)  # pixels are 0..16
    y = torch.tensor(y, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    n_test = int(len(x) * test_fraction)
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def make_optimizer(params, cfg: dict, lr: float) -> torch.optim.Optimizer:
    name = str(cfg.get("name", "sgd")).lower()
    momentum = float(cfg.get("momentum", 0.0))
    weight_decay = float(cfg.get("weight_decay", 0.0))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":  # `momentum` is Adam's beta1
        return torch.optim.Adam(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    raise SystemExit(f"unknown optimizer.name {name!r} (use sgd or adam)")


def main() -> None:
    args = parse_args()
    with open(args.config, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    torch.set_num_threads(1)
    torch.manual_seed(int(cfg.get("seed", 0)))

    data_cfg = cfg.get("data", {})
    x_train, y_train, x_test, y_test = load_data(float(data_cfg.get("test_fraction", 0.2)),
                                                 int(data_cfg.get("split_seed", 0)))
    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10))
    optimizer = make_optimizer(model.parameters(), cfg.get("optimizer", {}), args.lr)
    loss_fn = nn.CrossEntropyLoss()
    writer = SummaryWriter("digits")
    epochs = int(cfg.get("epochs", 10))
    print(f"digits: {len(x_train)} train / {len(x_test)} test, hidden={args.hidden}, "
          f"batch-size={args.batch_size}, lr={args.lr:g}, epochs={epochs}, "
          f"optimizer={cfg.get('optimizer')}", flush=True)

    # A job that starts again (`gml-ray run ... --resume` after an interrupted run) goes on from
    # its last checkpoint instead of from epoch 0 (docs/checkpoints.md).
    first_epoch = 0
    if gml_ray.get_checkpoint() is not None:
        state = torch.load(os.path.join(gml_ray.get_checkpoint(), "state.pt"))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])  # the same batches as an uninterrupted run
        first_epoch = gml_ray.restored_step() + 1
        print(f"restarting from the checkpoint of epoch {first_epoch}", flush=True)

    start = time.time()
    for epoch in range(first_epoch, epochs):
        model.train()
        order = torch.randperm(len(x_train))
        total = 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        train_loss = total / len(x_train)

        model.eval()
        with torch.no_grad():
            acc = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
        writer.add_scalar("Train Loss", train_loss, epoch)
        writer.add_scalar("Test Acc", acc, epoch)
        print(f"epoch {epoch + 1}/{epochs}  train loss {train_loss:.4f}  test acc {acc:.4f}  "
              f"({time.time() - start:.2f}s)", flush=True)
        # Written under a name of our own, then announced: gml-ray renames it to ckpt-<epoch>
        # and keeps the newest two (scheduler.checkpoint.keep).
        tmp = os.path.join(gml_ray.checkpoint_dir(), "writing")
        os.makedirs(tmp, exist_ok=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "rng": torch.get_rng_state()}, os.path.join(tmp, "state.pt"))
        gml_ray.checkpoint(tmp, epoch)
    writer.close()


if __name__ == "__main__":
    main()
