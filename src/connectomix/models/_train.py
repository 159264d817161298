"""Training of the affinity U-Net: resumable, checkpointed, with a loss curve.

A model directory holds everything about one model::

    MODEL_DIR/
      model.pt          weights only (a state dict; load with weights_only=True)
      model.json        architecture, offsets, training summary
      checkpoint.pt     weights + optimizer + iteration + RNG state, for resuming
      log.csv           iteration, train loss, validation loss, seconds
      loss.png          the loss curve

``train`` resumes from ``checkpoint.pt`` when it exists, also in a later session:
a background job ends with the session that started it, so checkpoints are frequent.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["train", "load_model", "affinity_loss", "lsd_loss", "synapse_loss", "TASKS", "AUX_TARGETS"]

#: What a network can be trained to predict.
TASKS = ("affinities", "synapses", "defects")
#: Auxiliary targets an affinity network can learn beside its affinities (``train(aux=...)``).
AUX_TARGETS = ("lsd",)


def _valid_masks(shape, offsets):
    """Per channel: 1 where v + offset lies inside the patch (the target is defined)."""
    mask = np.zeros((len(offsets),) + tuple(shape), np.float32)
    for c, off in enumerate(offsets):
        sl = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(off, shape))
        mask[(c,) + sl] = 1
    return mask


def affinity_loss(logits, target, mask):
    """Class-balanced binary cross-entropy over valid voxels, averaged over channels.

    Boundaries (affinity 0) are rare; positives and negatives each get half the
    weight of a channel so the network cannot ignore membranes. A network that
    outputs 0.5 everywhere scores ln 2 = 0.693.
    """
    import torch.nn.functional as F

    pos = (target * mask).sum(dim=(0, 2, 3, 4), keepdim=True)
    neg = ((1 - target) * mask).sum(dim=(0, 2, 3, 4), keepdim=True)
    w = mask * (target * 0.5 / pos.clamp(min=1) + (1 - target) * 0.5 / neg.clamp(min=1))
    loss = F.binary_cross_entropy_with_logits(logits.float(), target, weight=w, reduction="sum")
    return loss / logits.shape[1]


def lsd_loss(logits, target):
    """Mean squared error of ``sigmoid(logits)`` against local shape descriptors.

    Averaged over the descriptor channels and the voxels that have descriptors (those
    whose size channel, the last, is above 0: labelled voxels).
    """
    import torch

    fg = (target[:, -1:] > 0).to(torch.float32)
    err = (torch.sigmoid(logits.float()) - target) ** 2 * fg
    return err.sum() / (fg.sum().clamp(min=1) * target.shape[1])


def synapse_loss(logits, target):
    """Cleft and partner-vector loss of the synapse network.

    ``target`` holds the cleft mask (channel 0) and the partner vectors (channels 1-3,
    in units of VECTOR_SCALE_NM, defined on cleft voxels). The cleft term is a
    class-balanced BCE (clefts are rare: ~0.1 % of voxels), the vector term a smooth L1
    averaged over cleft voxels.
    """
    import torch.nn.functional as F

    logits = logits.float()
    cleft = target[:, :1]
    pos = cleft.sum().clamp(min=1)
    neg = (1 - cleft).sum().clamp(min=1)
    w = cleft * 0.5 / pos + (1 - cleft) * 0.5 / neg
    bce = F.binary_cross_entropy_with_logits(logits[:, :1], cleft, weight=w, reduction="sum")
    vec = F.smooth_l1_loss(logits[:, 1:4], target[:, 1:4], reduction="none").sum(dim=1, keepdim=True)
    vec = (vec * cleft).sum() / pos
    return bce + vec


class PatchSampler:
    """Random training patches (raw in 0..1, affinity targets) from whole volumes.

    ``lsd``: keyword arguments of :func:`~connectomix.models._lsd.local_shape_descriptors`
    (``voxel_size``, ...); the target then holds the descriptors of the augmented labels
    after the affinities. They are computed once per volume (in ``workers`` processes),
    so with the context around each patch, and cut out with it; the augmentation moves
    them with the labels (:func:`~connectomix.models._augment.augment`).
    """

    def __init__(self, volumes, patch, offsets, *, augment: bool = True, lsd: dict | None = None,
                 workers: int = 0):
        self.volumes = volumes
        self.patch = tuple(patch)
        self.offsets = offsets
        self.augment = augment
        self.lsd = lsd
        self.lsd_volumes = None if lsd is None else _descriptors_of(volumes, lsd, workers)
        self.mask = _valid_masks(self.patch, offsets)
        for raw, lab in volumes:
            if any(s < p for s, p in zip(raw.shape, self.patch)):
                raise ValueError(f"training volume {raw.shape} is smaller than the patch {self.patch}")

    def sample(self, rng: np.random.Generator):
        from ..segment import affinities_from_labels
        from ._augment import augment

        k = int(rng.integers(len(self.volumes)))
        raw, lab = self.volumes[k]
        corner = [rng.integers(0, s - p + 1) for s, p in zip(raw.shape, self.patch)]
        sl = tuple(slice(c, c + p) for c, p in zip(corner, self.patch))
        r = raw[sl].astype(np.float32) / 255.0
        l = np.asarray(lab[sl])
        if self.lsd is None:
            if self.augment:
                r, l = augment(r, l, rng)
            return r, affinities_from_labels(l, self.offsets)
        d = self.lsd_volumes[k][(slice(None),) + sl].astype(np.float32)
        if self.augment:
            r, l, d = augment(r, l, rng, lsd=d)
        return r, np.concatenate([affinities_from_labels(l, self.offsets), d])


def _descriptors_of(volumes, lsd: dict, workers: int) -> list:
    """Local shape descriptors (float16) of each volume's labels, in ``workers`` processes."""
    from functools import partial

    fn = partial(_descriptors_f16, **lsd)
    labels = [lab for _, lab in volumes]
    if workers and len(labels) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(min(workers, len(labels))) as pool:
            return pool.map(fn, labels)
    return [fn(lab) for lab in labels]


def _descriptors_f16(labels, **kw):
    from ._lsd import local_shape_descriptors

    return local_shape_descriptors(np.asarray(labels), **kw).astype(np.float16)


class SynapsePatchSampler:
    """Random patches (raw in 0..1, [cleft, vectors] targets), half of them centred on a cleft.

    ``volumes`` are (raw uint8, cleft mask uint8, vectors (3, Z, Y, X)) triples from
    :func:`synapse_targets`. Geometric augmentation is limited to flips and the y-x
    transpose, which map vectors exactly; intensity, noise, blur and missing sections
    as for the affinity network.
    """

    def __init__(self, volumes, patch, *, augment: bool = True):
        self.volumes = volumes
        self.patch = tuple(patch)
        self.augment = augment
        self.cleft_voxels = [np.flatnonzero(m) for _, m, _ in volumes]
        self.mask = None
        for raw, _, _ in volumes:
            if any(s < p for s, p in zip(raw.shape, self.patch)):
                raise ValueError(f"training volume {raw.shape} is smaller than the patch {self.patch}")

    def sample(self, rng: np.random.Generator):
        from ._augment import _intensity, _missing_and_damaged, _noise_blur
        from ._synapse_targets import flip_vectors

        k = int(rng.integers(len(self.volumes)))
        raw, mask, vec = self.volumes[k]
        cv = self.cleft_voxels[k]
        if len(cv) and rng.random() < 0.5:
            centre = np.unravel_index(cv[rng.integers(len(cv))], raw.shape)
            corner = [int(np.clip(c - p // 2 + rng.integers(-p // 4, p // 4 + 1), 0, s - p))
                      for c, p, s in zip(centre, self.patch, raw.shape)]
        else:
            corner = [int(rng.integers(0, s - p + 1)) for s, p in zip(raw.shape, self.patch)]
        sl = tuple(slice(c, c + p) for c, p in zip(corner, self.patch))
        r = raw[sl].astype(np.float32) / 255.0
        t = np.concatenate([mask[sl][None].astype(np.float32), vec[(slice(None),) + sl].astype(np.float32)])
        if self.augment:
            for axis in range(3):
                if rng.random() < 0.5:
                    r = np.flip(r, axis)
                    t = np.concatenate([np.flip(t[:1], axis + 1), flip_vectors(t[1:], axis)])
            if rng.random() < 0.5:
                r = r.transpose(0, 2, 1)
                t = t.transpose(0, 1, 3, 2)[[0, 1, 3, 2]]
            r = np.ascontiguousarray(r, np.float32)
            r = _noise_blur(_intensity(r, rng), rng)
            r = _missing_and_damaged(r.copy(), rng)
        return np.ascontiguousarray(r, np.float32), np.ascontiguousarray(t, np.float32)


class _Stream:
    """An endless stream of training patches, optionally from worker processes."""

    def __init__(self, sampler, batch_size, seed, workers):
        self.sampler, self.batch_size, self.seed, self.workers = sampler, batch_size, seed, workers

    def __iter__(self):
        if not self.workers:
            rng = np.random.default_rng(self.seed)
            while True:
                yield self._batch(rng)
        import torch

        ds = _patch_dataset(self.sampler, self.batch_size, self.seed)
        # fork: the workers share the generated volumes instead of pickling them
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=self.workers, prefetch_factor=4,
                                             multiprocessing_context="fork",
                                             pin_memory=torch.cuda.is_available())
        yield from loader

    def _batch(self, rng):
        xs, ys = zip(*(self.sampler.sample(rng) for _ in range(self.batch_size)))
        return np.stack(xs)[:, None], np.stack(ys)


def _patch_dataset(sampler, batch_size, seed):
    import torch

    class PatchDataset(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            rng = np.random.default_rng([*seed, info.id if info else 0])
            torch.set_num_threads(1)
            while True:
                xs, ys = zip(*(sampler.sample(rng) for _ in range(batch_size)))
                yield torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys))

    return PatchDataset()


def learning_rate(lr: float, done: int, progress: float, *, schedule: str = "constant", warmup: int = 0) -> float:
    """The learning rate after ``done`` iterations of a call, ``progress`` (0..1) through it.

    ``cosine`` decays from ``lr`` to ``lr / 50``; ``warmup`` iterations rise linearly
    from ``lr / 100``.
    """
    f = 1.0
    if schedule == "cosine":
        f = 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))
    if warmup and done < warmup:
        f *= 0.01 + 0.99 * done / warmup
    return lr * f


def _save(obj, path: Path) -> None:
    import torch

    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(
    out_dir,
    volumes: Sequence[tuple[np.ndarray, np.ndarray]],
    val_volumes: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    iterations: int = 1000,
    device: str = "cpu",
    patch=(16, 128, 128),
    batch_size: int = 1,
    lr: float = 5e-4,
    features: int = 12,
    offsets=None,
    checkpoint_every: int = 50,
    validate_every: int = 100,
    n_val_patches: int = 8,
    seed: int = 0,
    threads: int | None = None,
    workers: int = 0,
    task: str = "affinities",
    clip_norm: float = 1.0,
    schedule: str = "constant",
    warmup: int = 0,
    init=None,
    channels_last: bool = False,
    max_seconds: float | None = None,
    log: Callable[[str], None] = print,
    data_info: dict | None = None,
    aux: str | None = None,
    aux_weight: float = 1.0,
    scales=(1,),
) -> dict:
    """Train (or continue training) the affinity U-Net into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        The model directory; resumed from its ``checkpoint.pt`` when present.
    volumes, val_volumes : sequences of (raw uint8, labels) pairs, (Z, Y, X)
        Training and validation volumes (validation seeds never used for training).
        For ``task="synapses"``: (raw, cleft mask, partner vectors) triples from
        :func:`~connectomix.models.synapse_targets`; for ``task="defects"``: (raw,
        damaged-strip mask) pairs from :func:`~connectomix.models.make_defect_volumes`.
    iterations : int
        Total iterations to reach (including those already done).
    device : {'cpu', 'cuda'}
        Mixed precision (bfloat16 autocast) is used on CUDA.
    workers : int
        Processes that cut and augment patches (0: in the training process).
    task : {'affinities', 'synapses', 'defects'}
        What the network learns: affinities for the given offsets, synaptic clefts
        with partner vectors (4 output channels), or the damaged pixels of a section
        between its neighbours (patches of 3 sections; :mod:`._defects`).
    init : path or "shipped", optional
        Start from these weights (a model directory, or the shipped model for
        ``task``) when ``out_dir`` has no checkpoint yet: continues a shipped model in
        a later session, with a fresh optimiser. A network with fewer ``features``
        (otherwise the same) is widened to ``features`` first, keeping its function
        (:func:`~connectomix.models._unet.widen`).
    channels_last : bool
        Keep weights and activations in channels-last memory (NDHWC), which cuDNN's
        bfloat16 kernels may run faster; the arithmetic is the same.
    max_seconds : float, optional
        Stop (after a checkpoint) when this much wall time has passed since the call
        began (making the patch samplers, e.g. the descriptors of ``aux='lsd'``, included).
    schedule : {'constant', 'cosine'}
        Learning rate over this call: constant ``lr``, or a cosine decay from ``lr``
        to ``lr / 50`` over this call's iterations or ``max_seconds``, whichever
        ends first (a late, low learning rate settles the weights).
    warmup : int
        Iterations of this call over which the learning rate rises linearly from
        ``lr / 100`` (a fresh optimiser on trained weights otherwise jolts them).
    aux : {None, 'lsd'}
        An auxiliary target for an affinity network: ``'lsd'`` adds 10 output channels
        that learn the local shape descriptors of the labels (:mod:`._lsd`; Sheridan et
        al. 2022), at the voxel size ``data_info["voxel_size"]`` (default 40 x 8 x 8 nm).
        The loss is the affinity loss plus ``aux_weight`` times their mean squared
        error; the validation loss (and the choice of ``best.pt``) stays the affinity
        loss alone, comparable with networks without it. The shipped inference reads the
        affinity channels only (:func:`load_model` drops the others).
    scales : tuple of int
        ``task="defects"``: the scales patches are drawn at (k: sections averaged over
        k x k pixel blocks, see :class:`~connectomix.models._defects.DefectPatchSampler`);
        recorded in ``model.json``, where ``align`` reads which block-averaging the
        network was trained for. Validation patches are drawn at the same scales.

    Returns
    -------
    dict
        The training summary also written to ``model.json``.
    """
    import torch

    from ._unet import DEFAULT_OFFSETS, UNet3D

    started = time.perf_counter()  # max_seconds counts from here
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    scales = tuple(int(k) for k in scales)
    if not scales or min(scales) < 1:
        raise ValueError(f"scales must be positive integers, got {scales}")
    if scales != (1,) and task != "defects":
        raise ValueError(f"scales other than (1,) are for task 'defects' only, got {scales} for {task!r}")
    if aux is not None and (aux not in AUX_TARGETS or task != "affinities"):
        raise ValueError(f"aux must be None or one of {AUX_TARGETS}, for task 'affinities' (got {aux!r} for {task!r})")
    out = Path(out_dir)  # made only once the options are known to be good
    out.mkdir(parents=True, exist_ok=True)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed patch shape: let cuDNN pick its fastest kernels
    offsets = [list(o) for o in (offsets or DEFAULT_OFFSETS)] if task == "affinities" else []
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    if task == "defects":
        from ._defects import DEFECT_DOWNSAMPLE

        model = UNet3D(1, 1, features=features, downsample=DEFECT_DOWNSAMPLE).to(device)
    else:
        from ._lsd import LSD_CHANNELS

        n_out = len(offsets) + (LSD_CHANNELS if aux == "lsd" else 0) if task == "affinities" else 4
        model = UNet3D(1, n_out, features=features).to(device)
    aux_info = None
    if aux == "lsd":
        from ._lsd import DEFAULT_DOWNSAMPLE, DEFAULT_SIGMA_NM, LSD_CHANNELS

        aux_info = {"name": "lsd", "channels": LSD_CHANNELS, "first_channel": len(offsets), "weight": aux_weight,
                    "sigma_nm": DEFAULT_SIGMA_NM, "downsample": DEFAULT_DOWNSAMPLE,
                    "voxel_size": list((data_info or {}).get("voxel_size") or (40, 8, 8))}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    start_it, elapsed, history = 0, 0.0, []
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        prev = json.loads((out / "model.json").read_text()) if (out / "model.json").exists() else {}
        if prev and (prev.get("task", "affinities") != task or prev.get("config", model.config) != model.config
                     or _aux_identity(prev.get("aux")) != _aux_identity(aux_info)):
            raise ValueError(f"{out} holds a {prev.get('task', 'affinities')} model {prev.get('config')} with auxiliary "
                             f"target {prev.get('aux')}; it cannot be resumed as a {task} model {model.config} with "
                             f"{aux_info} (another --out, or the same options)")
        if prev and task == "defects" and tuple(prev.get("scales", [1])) != scales:
            # the validation patches (and so the choice of best.pt) depend on the scales
            raise ValueError(f"{out} was trained at scales {tuple(prev.get('scales', [1]))}; it cannot be resumed at "
                             f"scales {scales} (another --out, or the same --scale options)")
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start_it, elapsed = int(ckpt["iteration"]), float(ckpt["seconds"])
        history = json.loads(ckpt["history"])
        log(f"resumed from {ckpt_path} at iteration {start_it}")
        if prev.get("offsets", offsets) != offsets:
            raise ValueError(f"{out} was trained with offsets {prev['offsets']}, not {offsets}")
    elif init is not None:
        from ._unet import widen

        start_model, start_meta = load_model(None if init == "shipped" else init, device="cpu", task=task,
                                             keep_aux=True)
        like = {**start_meta["config"], "features": model.config["features"],
                "out_channels": model.config["out_channels"]}
        narrower = start_meta["config"]["features"] < model.config["features"]
        if like != model.config or start_meta["config"]["features"] > model.config["features"]:
            raise ValueError(f"cannot start from {init}: its architecture {start_meta['config']} differs "
                             f"from {model.config}, and only a narrower, otherwise identical network can be widened")
        if [list(o) for o in start_meta.get("offsets") or []] != offsets:
            raise ValueError(f"cannot start from {init}: it predicts offsets {start_meta.get('offsets')}, not {offsets}")
        if start_meta.get("aux") and aux_info and _aux_identity(start_meta["aux"]) != _aux_identity(aux_info):
            raise ValueError(f"cannot start from {init}: its auxiliary target {start_meta['aux']} is not {aux_info}")
        # a narrower network is widened first, computing the same function (see widen)
        if narrower:
            start_model = widen(start_model, model.config["features"], seed=seed)
        # the output channels both have (the affinities; the auxiliary ones too if both learn them) keep
        # their weights; channels the start lacks keep this model's fresh initialisation
        state = model.state_dict()
        for name, w in start_model.state_dict().items():
            if name.startswith("head.") and w.shape[0] != state[name].shape[0]:
                n = min(w.shape[0], state[name].shape[0], len(offsets))
                state[name][:n] = w[:n]
            else:
                state[name] = w
        model.load_state_dict(state)
        start_it = int(start_meta.get("iterations", 0))
        # validated below on this run's validation patches, so best.pt compares like with like
        history = [{"iteration": start_it, "loss": float("nan"), "val_loss": None, "seconds": 0.0}]
        how = f", widened from {start_meta['config']['features']} to {features} features" if narrower else ""
        log(f"starting from the weights in {init} (iteration {start_it}{how}, fresh optimiser)")
    val_loss_fn = None
    if task == "affinities":
        lsd = None if aux_info is None else {"voxel_size": tuple(aux_info["voxel_size"]),
                                             "sigma_nm": aux_info["sigma_nm"], "downsample": aux_info["downsample"]}
        sampler = PatchSampler(volumes, patch, offsets, lsd=lsd, workers=workers)
        val_sampler = PatchSampler(val_volumes, patch, offsets, augment=False)  # affinity loss only
        mask = torch.from_numpy(sampler.mask[None]).to(device)
        n_aff = len(offsets)

        def val_loss_fn(logits, y):
            return affinity_loss(logits[:, :n_aff], y[:, :n_aff], mask.expand_as(y[:, :n_aff]))

        def loss_fn(logits, y):
            loss = val_loss_fn(logits, y)
            if aux_info is not None:
                loss = loss + aux_weight * lsd_loss(logits[:, n_aff:], y[:, n_aff:])
            return loss
    elif task == "synapses":
        sampler = SynapsePatchSampler(volumes, patch)
        val_sampler = SynapsePatchSampler(val_volumes, patch, augment=False)
        loss_fn = synapse_loss
    else:
        from ._defects import DefectPatchSampler, defect_loss

        sampler = DefectPatchSampler(volumes, patch, scales=scales)
        val_sampler = DefectPatchSampler(val_volumes, patch, augment=False, scales=scales)
        loss_fn = defect_loss
    val_rng = np.random.default_rng(12345)
    val_set = [val_sampler.sample(val_rng) for _ in range(n_val_patches)]
    use_amp = device.startswith("cuda")
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    stream = iter(_Stream(sampler, batch_size, [seed, start_it], workers))
    t0 = time.perf_counter()
    it = start_it
    running = []

    def validate():
        model.eval()
        losses = []
        with torch.no_grad():
            for r, a in val_set:
                x = torch.from_numpy(r[None, None]).to(device)
                y = torch.from_numpy(a[None]).to(device)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                    logits = model(x)
                losses.append(float((val_loss_fn or loss_fn)(logits, y)))
        model.train()
        return float(np.mean(losses))

    def checkpoint():
        _save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "iteration": it,
                "seconds": elapsed + time.perf_counter() - t0,
                "history": json.dumps(history),
            },
            ckpt_path,
        )
        _save(model.state_dict(), out / "model.pt")
        summary = {
            "architecture": "UNet3D",
            "task": task,
            "config": model.config,
            "offsets": offsets,
            "iterations": it,
            "device": device,
            "train_seconds": round(elapsed + time.perf_counter() - t0, 1),
            "patch": list(patch),
            "batch_size": batch_size,
            "lr": lr,
            "schedule": schedule,
            "seed": seed,
            "parameters": sum(p.numel() for p in model.parameters()),
            "best_val_loss": min((h["val_loss"] for h in history if h.get("val_loss") is not None), default=None),
            "best_iteration": min(((h["val_loss"], h["iteration"]) for h in history if h.get("val_loss") is not None),
                                  default=(None, None))[1],
            "last_val_loss": next((h["val_loss"] for h in reversed(history) if h.get("val_loss") is not None), None),
            "data": data_info or {},
            "voxel_size": (data_info or {}).get("voxel_size"),
        }
        if aux_info is not None:
            summary["aux"] = aux_info
        if task == "defects":
            summary["scales"] = list(scales)
        (out / "model.json").write_text(json.dumps(summary, indent=2))
        _write_log(out, history)
        return summary

    if init is not None and history and history[0]["val_loss"] is None and len(history) == 1:
        history[0]["val_loss"] = validate()
        _save(model.state_dict(), out / "best.pt")
        log(f"validation loss of the starting weights: {history[0]['val_loss']:.4f}")
    model.train()
    summary = None
    first_it = it

    while it < iterations:
        progress = (it - first_it) / max(1, iterations - first_it)
        if max_seconds:
            progress = max(progress, (time.perf_counter() - started) / max_seconds)
        for group in opt.param_groups:
            group["lr"] = learning_rate(lr, it - first_it, progress, schedule=schedule, warmup=warmup)
        x, y = next(stream)
        x = torch.as_tensor(x).to(device, non_blocking=True).contiguous(memory_format=fmt)
        y = torch.as_tensor(y).to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
        loss = loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # Clipping keeps one bad batch from throwing the weights away: without it a
        # GPU run jumped from loss 0.33 to 290 at iteration 6,600 and never recovered.
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        if torch.isfinite(gnorm):
            opt.step()
        it += 1
        running.append(float(loss.detach()))
        entry = None
        if it % 10 == 0:
            entry = {"iteration": it, "loss": float(np.mean(running)), "val_loss": None,
                     "seconds": round(elapsed + time.perf_counter() - t0, 1)}
            running = []
        if it % validate_every == 0 or it == iterations:
            entry = entry or {"iteration": it, "loss": float(np.mean(running or [float(loss)])),
                              "seconds": round(elapsed + time.perf_counter() - t0, 1)}
            entry["val_loss"] = validate()
            log(f"iteration {it}: train loss {entry['loss']:.4f}, validation loss {entry['val_loss']:.4f}")
            best = min((h["val_loss"] for h in history if h.get("val_loss") is not None), default=math.inf)
            if entry["val_loss"] < best:  # the best weights seen, beside the latest (model.pt)
                _save(model.state_dict(), out / "best.pt")
        if entry:
            history.append(entry)
        timed_out = max_seconds is not None and time.perf_counter() - started > max_seconds
        if it % checkpoint_every == 0 or it == iterations or timed_out:
            summary = checkpoint()
        if timed_out:
            log(f"stopping at iteration {it}: time limit reached (resume by running again)")
            break
    if summary is None:
        summary = checkpoint()
    return summary


def _aux_identity(aux: dict | None):
    """What makes two auxiliary targets the same target (their loss weight may differ)."""
    return None if not aux else {k: v for k, v in aux.items() if k != "weight"}


def _write_log(out: Path, history) -> None:
    lines = ["iteration,loss,val_loss,seconds"]
    for h in history:
        v = "" if h.get("val_loss") is None else f"{h['val_loss']:.5f}"
        lines.append(f"{h['iteration']},{h['loss']:.5f},{v},{h['seconds']}")
    (out / "log.csv").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the picture is optional; the CSV is the record
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    it = [h["iteration"] for h in history]
    ax.plot(it, [h["loss"] for h in history], label="train", lw=1)
    val = [(h["iteration"], h["val_loss"]) for h in history if h.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_xlabel("iteration")
    ax.set_ylabel("balanced BCE")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)


def load_model(model_dir=None, *, device: str = "cpu", task: str | None = None, keep_aux: bool = False):
    """Load a trained U-Net (weights only, never arbitrary pickles) and its metadata.

    ``model_dir=None`` loads the model that ships with connectomix for ``task``
    (``"affinities"`` by default, ``"synapses"`` or ``"defects"``). A model trained for
    another task than the one asked for is refused. A network trained with an auxiliary
    target (``train(aux=...)``) comes back predicting its affinities only, unless
    ``keep_aux`` (to continue training it).
    """
    import torch

    from ..errors import ModelError
    from ._unet import UNet3D

    want = task or "affinities"
    d = Path(model_dir) if model_dir else Path(__file__).parent / "weights" / want
    meta_path = d / "model.json"
    if not meta_path.exists():
        if model_dir is None:
            raise ModelError(f"no trained {want} model ships in {d}: train one with `connectomix train --out DIR` "
                             "and pass --model DIR")
        raise ModelError(f"no trained model in {d} (model.json missing)")
    try:
        meta = json.loads(meta_path.read_text())
        cfg = meta["config"]
        model = UNet3D(cfg["in_channels"], cfg["out_channels"], features=cfg["features"],
                       downsample=cfg["downsample"])
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{meta_path} is not a connectomix model description: {e}") from None
    have = meta.get("task", "affinities")
    if task is not None and have != task:
        raise ModelError(f"{d} holds a {have} model, not a {task} model")
    try:
        state = torch.load(d / "model.pt", map_location=device, weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{d / 'model.pt'} is missing") from None
    except Exception as e:  # truncated zip, foreign pickle: torch raises several types
        raise ModelError(f"{d / 'model.pt'} cannot be read as model weights ({type(e).__name__}: {e})") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, AttributeError, TypeError) as e:
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"{d / 'model.pt'} does not fit the architecture in {meta_path}: {first}") from None
    if meta.get("aux") and not keep_aux:
        _drop_aux_channels(model, len(meta.get("offsets") or []))
        meta["config"] = dict(model.config)
    model.eval()
    return model.to(device), meta


def _drop_aux_channels(model, n: int) -> None:
    """Keep the first ``n`` output channels of ``model`` (its affinities): the head is a 1x1x1 convolution."""
    import torch

    if not 0 < n < model.head.out_channels:
        from ..errors import ModelError

        raise ModelError(f"a model with auxiliary outputs must list its {model.head.out_channels} channels' "
                         f"affinity offsets first; it lists {n}")
    head = torch.nn.Conv3d(model.head.in_channels, n, 1)
    with torch.no_grad():
        head.weight.copy_(model.head.weight[:n])
        head.bias.copy_(model.head.bias[:n])
    model.head = head
    model.config["out_channels"] = n
