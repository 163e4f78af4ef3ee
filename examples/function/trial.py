"""A function trial (docs: "Reporting scalars"): gml-ray calls `train(config)` in a Ray worker.

`config` holds one value per search arg. Each `gml_ray.report(...)` call is the next step.
`print` output goes to the Ray worker's log files, not to the terminal or the job dir.
"""
import math

import gml_ray


def train(config):
    x, lr = config['x'], config['lr']
    print(f"x={x} lr={lr}")
    loss = 1.0
    for step in range(20):
        loss = (x - 0.3) ** 2 + math.exp(-lr * 100 * (step + 1))
        gml_ray.report(loss=loss, lr=lr)
    return {'final_loss': loss}  # a returned dict is one last report
