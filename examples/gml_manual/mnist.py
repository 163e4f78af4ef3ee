"""The manual's mnist.py, in miniature: softmax regression on scikit-learn's bundled digits.

Written the way GML training scripts are (manual 2.6): it reports through pavi's SummaryWriter,
which gml-ray provides when no real pavi is installed. Reads the File arg's rendered config
(epochs, lr, scheduler.step_size/gamma) and the template's --batch-size / --log-interval.
"""
import argparse

import numpy as np
import yaml
from pavi import SummaryWriter
from sklearn.datasets import load_digits


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--log-interval", type=int, default=10)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--pavi", action="store_true")
    args = parser.parse_args()
    with open(args.config) as f:
        cfg = yaml.safe_load(f)
    lr = args.lr if args.lr is not None else cfg["lr"]

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1500], order[1500:]
    w = np.zeros((64, 10))
    writer = SummaryWriter("mnist")
    step = 0
    for epoch in range(cfg["epochs"]):
        if epoch and epoch % cfg["scheduler"]["step_size"] == 0:
            lr *= cfg["scheduler"]["gamma"]
        for start in range(0, len(train), args.batch_size):
            idx = train[start:start + args.batch_size]
            logits = x[idx] @ w
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1
            w -= lr * x[idx].T @ p / len(idx)
            step += 1
            if step % args.log_interval == 0:
                writer.add_scalar("loss", float(np.abs(p).mean()), step)
        acc = float(((x[test] @ w).argmax(1) == y[test]).mean())
        writer.add_scalar("Test Acc", np.float64(acc), epoch)
        print(f"epoch {epoch}: Test Acc {acc:.4f}")


if __name__ == "__main__":
    main()
