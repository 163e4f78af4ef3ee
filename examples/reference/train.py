"""A stand-in training script for the reference config (docs/configuration.md): no data, no
torch. It reads the rendered config file and the command-line args, then reports a made-up
accuracy curve, four steps per epoch, the way a real script would.

By hand: python train.py --config config.yaml --batch-size 256 --lr 0.01 --hidden 64 --opt sgd --momentum 0.9
"""
import argparse
import math
import time

import yaml

from gml_ray import SummaryWriter

p = argparse.ArgumentParser()
p.add_argument("--config", required=True)
p.add_argument("--batch-size", type=int, required=True)
p.add_argument("--lr", type=float, required=True)
p.add_argument("--hidden", type=int, required=True)
p.add_argument("--opt", choices=["sgd", "adam"], required=True)
p.add_argument("--momentum", type=float, required=True)
args = p.parse_args()
with open(args.config) as f:
    cfg = yaml.safe_load(f)

# The best learning rate is about 0.01; more hidden units and a slower decay help a little.
quality = math.exp(-(math.log10(args.lr) + 2) ** 2) * (0.8 + 0.2 * args.hidden / 256)
quality *= 1.0 if args.opt == "adam" else 0.9 + 0.1 * args.momentum
quality *= 0.95 + 0.05 * cfg["scheduler"]["gamma"]
writer = SummaryWriter("reference")
steps = 4 * cfg["epochs"]
for step in range(steps):
    progress = 1 - math.exp(-3 * (step + 1) / steps)
    writer.add_scalar("Test Acc", 0.1 + 0.85 * quality * progress, step)
    writer.add_scalar("Train Loss", 2.3 * (1 - quality * progress), step)
    time.sleep(0.02)
print(f"done: {steps} steps, batch size {args.batch_size}")
