"""A small MLP on scikit-learn's digits, for Population Based Training (search_config.yaml here).

It checkpoints after every epoch and, when gml-ray starts it from a checkpoint (another job's,
under PBT), loads the model and optimizer state and goes on with its own --lr and --momentum.

    python train.py --lr 0.05 --momentum 0.9     # by hand: checkpoints go to ./gml_checkpoints
"""
from __future__ import annotations

import argparse
import os

import torch
from sklearn.datasets import load_digits  # bundled with scikit-learn: nothing is downloaded
from torch import nn

import gml_ray

EPOCHS = 12


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--momentum", type=float, required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    test, train = perm[:360], perm[360:]
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)

    first = 0
    if gml_ray.get_checkpoint() is not None:  # this job's own, or (PBT) the job it continues
        state = torch.load(os.path.join(gml_ray.get_checkpoint(), "state.pt"))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first = gml_ray.restored_step() + 1
    for group in optimizer.param_groups:  # this job's hyperparameters, not the loaded ones
        group["lr"], group["momentum"] = args.lr, args.momentum

    writer = gml_ray.SummaryWriter()
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(first, EPOCHS):
        model.train()
        order = train[torch.randperm(len(train))]
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            optimizer.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x[test]).argmax(dim=1) == y[test]).float().mean().item()
        writer.add_scalar("Test Acc", acc, epoch)
        tmp = os.path.join(gml_ray.checkpoint_dir(), "writing")
        os.makedirs(tmp, exist_ok=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
                   os.path.join(tmp, "state.pt"))
        gml_ray.checkpoint(tmp, epoch)


if __name__ == "__main__":
    main()
