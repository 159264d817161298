"""Copy a trained model directory into the package (weights only, no optimiser state).

    python scripts/ship_model.py MODEL_DIR affinities|synapses|defects [--weights best|latest]

Writes ``src/connectomix/models/weights/<task>/``: ``model.pt`` (a state dict, loaded
with ``weights_only=True``), ``model.json`` (architecture and training summary),
``log.csv`` and ``loss.png``.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from connectomix.models._train import _write_log  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("model_dir", type=Path)
    p.add_argument("task", choices=["affinities", "synapses", "defects"])
    p.add_argument("--weights", choices=["best", "latest", "checkpoint"], default="checkpoint")
    args = p.parse_args(argv)
    src = args.model_dir
    dst = ROOT / "src" / "connectomix" / "models" / "weights" / args.task
    dst.mkdir(parents=True, exist_ok=True)
    meta = json.loads((src / "model.json").read_text())
    if meta.get("task", "affinities") != args.task:
        sys.exit(f"{src} holds a {meta.get('task')} model")
    if args.weights == "checkpoint":
        state = torch.load(src / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    else:
        state = torch.load(src / ("best.pt" if args.weights == "best" else "model.pt"), map_location="cpu",
                           weights_only=True)
    torch.save({k: v.float().contiguous() for k, v in state.items()}, dst / "model.pt")
    if args.weights == "best" and meta.get("best_iteration") is not None:
        meta["trained_iterations"] = meta["iterations"]
        meta["iterations"] = int(meta["best_iteration"])  # the weights shipped are from this iteration
    meta["name"] = f"connectomix-{args.task}-{meta['iterations']}"
    meta["weights"] = args.weights
    meta.setdefault("voxel_size", list(meta.get("data", {}).get("voxel_size", [40, 8, 8])))
    (dst / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    history = []
    for line in (src / "log.csv").read_text().splitlines()[1:]:
        it, loss, val, sec = line.split(",")
        history.append({"iteration": int(it), "loss": float(loss), "val_loss": float(val) if val else None,
                        "seconds": float(sec)})
    _write_log(dst, history)
    print(f"shipped {src} -> {dst} ({sum(v.numel() for v in state.values())} parameters)")


if __name__ == "__main__":
    main()
