"""Train the shipped networks (affinities and synapses) side by side on one GPU.

This is the script that produced ``src/connectomix/models/weights*`` (see the model
cards there). It generates the training data on the machine it runs on (from the
generator's ``train`` preset and fixed seeds, so nothing has to be carried), trains
both U-Nets concurrently in two processes with bf16 autocast, and keeps the latest
checkpoint, metadata and log of each in ``OUT/seg`` and ``OUT/syn`` so that an
interrupted job loses little. It ends with a forward-pass throughput measurement.

    PYTHONPATH=src python3 scripts/train_gpu.py --out OUT --minutes 6

Resume (here or in a later session) by pointing ``connectomix train`` at a copy of
the model directory (``checkpoint.pt`` holds weights, optimiser and iteration), or
``--work`` at a folder holding ``seg/checkpoint.pt``; or continue the shipped models
with ``--init-shipped`` (weights only, fresh optimiser). ``--init-shipped --features N``
with N above the shipped network's first widens it, keeping what it computes, so the
added capacity trains from the shipped model's loss instead of from scratch. On a
lent accelerator, ``--deadline`` (seconds) fits the training into the call, and
``--memory-format auto`` times both memory layouts first and trains in the faster.
``--aux lsd`` adds local shape descriptors as an auxiliary target of the affinity network
(:mod:`connectomix.models._lsd`; the validation loss stays the affinity loss, so runs
compare); the descriptors of each training volume are computed once at the start (a
second or two per volume, shared among ``--workers`` processes) and cut out with each
patch, which then costs about 4x the CPU of an affinity-only patch (32 against 8 ms
here), still within what 14 workers feed the GPU. Not yet run on a GPU.
The generator needs ``connected-components-3d`` (cc3d): where the GPU machine lacks it,
carry its wheel (``pip download --only-binary=:all: --python-version 3.12 ...``) and
put it on ``PYTHONPATH``. Every run that made the shipped networks is in their model
cards; the one that widened the affinity network to 16 features, in one 10-minute call::

    PYTHONPATH=src python3 scripts/train_gpu.py --out $OUT --tasks affinities --init-shipped \
        --features 16 --volumes 128 --first-volume 512 --workers 14 --gen-workers 16 \
        --schedule cosine --warmup 200 --lr 1e-3 --memory-format auto --deadline 550 --minutes 30
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path

DIRS = {"affinities": "seg", "synapses": "syn"}


def _trainer(task, vols, val, out, args):
    from connectomix.models import train

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    train(out, vols, val, iterations=args.iterations, device=args.device, patch=tuple(args.patch),
          channels_last=args.memory_format == "channels_last",
          batch_size=args.batch_size, lr=args.lr, features=args.features, task=task,
          checkpoint_every=args.checkpoint_every, validate_every=args.validate_every, n_val_patches=args.val_patches,
          schedule=args.schedule, warmup=args.warmup,
          seed=0 if task == "affinities" else 1, workers=args.workers, max_seconds=args.minutes * 60,
          init="shipped" if args.init_shipped else None,
          aux=args.aux if task == "affinities" else None, aux_weight=args.aux_weight,
          log=lambda m: print(f"[{task}] {m}", flush=True),
          data_info={"preset": "train", "train_seeds": args.seeds, "val_seeds": args.val_seeds,
                     "shape": list(args.shape), "voxel_size": args.voxel_size})


def _mirror(work: Path, out: Path):
    """Copy each model's latest checkpoint, card and log into OUT (atomically)."""
    for name in DIRS.values():
        src, dst = work / name, out / name
        dst.mkdir(parents=True, exist_ok=True)
        for f in ("checkpoint.pt", "best.pt", "model.pt", "model.json", "log.csv"):
            if (src / f).exists():
                tmp = out / f".{name}-{f}.tmp"
                shutil.copyfile(src / f, tmp)
                os.replace(tmp, dst / f)


def _time_formats(features, batch, patch, device, path):
    """Seconds per training step (forward, backward) in each memory format; written to ``path``.

    Runs in a spawned process, so the trainers forked later still find CUDA
    uninitialised.
    """
    import torch

    from connectomix.models._unet import DEFAULT_OFFSETS, UNet3D

    torch.backends.cudnn.benchmark = True
    cuda = str(device).startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    res = {}
    for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last_3d)):
        try:
            model = UNet3D(1, len(DEFAULT_OFFSETS), features=features).to(device).to(memory_format=fmt)
            x = torch.rand((batch, 1) + tuple(patch), device=device).contiguous(memory_format=fmt)
            for i in range(18):
                if i == 6:
                    sync()
                    t = time.perf_counter()
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    loss = model(x).float().square().mean()
                loss.backward()
            sync()
            res[name] = (time.perf_counter() - t) / 12
        except Exception as e:  # a format the device cannot train in is not chosen
            print(f"{name}: {type(e).__name__}: {e}", flush=True)
            res[name] = float("inf")
    Path(path).write_text(json.dumps(res))


def _throughput(model_dir: Path, device: str, out: Path):
    import torch

    from connectomix.models import load_model

    model, _ = load_model(model_dir, device=device)
    res = {}
    for shape in ((32, 256, 256), (64, 512, 512)):
        x = torch.rand((1, 1) + shape, device=device)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            for _ in range(3):
                model(x)
            torch.cuda.synchronize()
            t = time.perf_counter()
            n = 10
            for _ in range(n):
                model(x)
            torch.cuda.synchronize()
            dt = (time.perf_counter() - t) / n
        res["x".join(map(str, shape))] = round(x.numel() / dt / 1e6, 1)
    res["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    res["gpu"] = torch.cuda.get_device_name()
    print("forward bf16 Mvoxels/s:", res, flush=True)
    (out / "throughput.json").write_text(json.dumps(res, indent=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--work", default="/tmp/connectomix-models")
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--device", default="cuda")
    p.add_argument("--volumes", type=int, default=64)
    p.add_argument("--first-volume", type=int, default=0,
                   help="index into TRAIN_SEEDS of the first training volume (a continuation on fresh volumes)")
    p.add_argument("--shape", type=int, nargs=3, default=(32, 256, 256))
    p.add_argument("--patch", type=int, nargs=3, default=(16, 128, 128))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--features", type=int, default=12)
    p.add_argument("--iterations", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=6, help="patch workers per network")
    p.add_argument("--gen-workers", type=int, default=16)
    p.add_argument("--checkpoint-every", type=int, default=400)
    p.add_argument("--validate-every", type=int, default=200)
    p.add_argument("--tasks", nargs="+", default=["affinities", "synapses"])
    p.add_argument("--schedule", choices=("constant", "cosine"), default="cosine",
                   help="learning rate: constant, or cosine decay over --minutes")
    p.add_argument("--warmup", type=int, default=200, help="iterations of linear learning-rate warm-up")
    p.add_argument("--val-patches", type=int, default=32)
    p.add_argument("--init-shipped", action="store_true", help="start from the shipped weights (fresh optimiser)")
    p.add_argument("--skip-throughput", action="store_true", help="no forward-pass timing at the end")
    p.add_argument("--aux", choices=("lsd",), default=None,
                   help="auxiliary target of the affinity network: local shape descriptors (10 more outputs)")
    p.add_argument("--aux-weight", type=float, default=1.0, help="weight of the auxiliary loss")
    p.add_argument("--memory-format", choices=("auto", "contiguous", "channels_last"), default="contiguous",
                   help="activations' memory layout in training; auto times both first and takes the faster")
    p.add_argument("--deadline", type=float, default=None,
                   help="seconds from the start by which the script must end: training is shortened to fit")
    args = p.parse_args(argv)

    from connectomix.models import TRAIN_SEEDS, VAL_SEEDS
    from connectomix.models._data import make_training_volumes, make_volumes

    from connectomix.synth import resolve_settings

    if args.first_volume < 0 or args.first_volume + args.volumes > len(TRAIN_SEEDS):
        p.error(f"--first-volume + --volumes must be at most {len(TRAIN_SEEDS)}, got {args.first_volume + args.volumes}")
    args.seeds = list(TRAIN_SEEDS[args.first_volume : args.first_volume + args.volumes])
    args.voxel_size = list(resolve_settings(preset="train", seed=args.seeds[0]).voxel_size)
    args.val_seeds = list(VAL_SEEDS)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    for name in DIRS.values():  # resume from checkpoints brought along in OUT, if any
        if (out / name / "checkpoint.pt").exists() and not (work / name / "checkpoint.pt").exists():
            shutil.copytree(out / name, work / name, dirs_exist_ok=True)
    t0 = time.perf_counter()
    timer = None
    if args.memory_format == "auto":
        timer = mp.get_context("spawn").Process(target=_time_formats, args=(
            args.features, args.batch_size, args.patch, args.device, work / "formats.json"))
        work.mkdir(parents=True, exist_ok=True)
        timer.start()
    if args.tasks == ["affinities"]:  # the synapse targets are not needed: skip them (faster, less memory)
        train = {"affinities": make_volumes(args.seeds, shape=args.shape, workers=args.gen_workers)}
        val = {"affinities": make_volumes(args.val_seeds, shape=args.shape, workers=args.gen_workers)}
    else:
        train = make_training_volumes(args.seeds, shape=args.shape, workers=args.gen_workers)
        val = make_training_volumes(args.val_seeds, shape=args.shape, workers=args.gen_workers)
    print(f"generated {len(args.seeds)}+{len(args.val_seeds)} volumes in {time.perf_counter() - t0:.0f} s", flush=True)
    if timer is not None:
        timer.join()
        f = work / "formats.json"
        times = json.loads(f.read_text()) if f.exists() else {"contiguous": 0.0}
        args.memory_format = min(times, key=times.get)
        print(f"seconds per training step: {times}; training in {args.memory_format}", flush=True)
    if args.deadline:  # leave time for the last checkpoint, the copies and the throughput
        left = (args.deadline - (time.perf_counter() - t0) - 50) / 60
        if left < 0.5:
            p.error(f"--deadline {args.deadline} leaves no time to train after generating the volumes")
        args.minutes = min(args.minutes, left)
        print(f"training for {args.minutes:.2f} minutes", flush=True)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_trainer, args=(t, train[t], val[t], work / DIRS[t], args)) for t in args.tasks]
    for pr in procs:
        pr.start()
    while any(pr.is_alive() for pr in procs):
        time.sleep(20)
        _mirror(work, out)
    _mirror(work, out)
    codes = [pr.exitcode for pr in procs]
    print("trainers exited with", codes, flush=True)
    if args.device.startswith("cuda") and "affinities" in args.tasks and not args.skip_throughput:
        _throughput(work / "seg", args.device, out)
    return 0 if all(c == 0 for c in codes) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
