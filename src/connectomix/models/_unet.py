"""A compact 3D U-Net for anisotropic serial-section EM.

The top levels convolve and downsample in-plane only (sections are ~5x thicker than
pixels are wide), the deeper levels in 3D. ``same`` padding keeps shapes simple; the
prediction driver gives every block enough context that padding never reaches the
voxels it keeps, and aligns blocks to the network's total downsampling factor, so
block-wise prediction matches whole-volume prediction up to float rounding.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

__all__ = [
    "UNet3D", "widen", "DEFAULT_OFFSETS", "PRECISIONS", "check_device", "inference_dtype", "precision_name", "forward",
]

#: Affinity offsets (voxels, z y x): nearest neighbours first (DESIGN.md), then long range.
DEFAULT_OFFSETS = (
    (-1, 0, 0), (0, -1, 0), (0, 0, -1),
    (-2, 0, 0), (0, -4, 0), (0, 0, -4),
    (0, -12, 0), (0, 0, -12),
)


def _conv_block(cin: int, cout: int, kernel) -> nn.Sequential:
    # No normalisation layer: GroupNorm/InstanceNorm statistics span the whole input,
    # which would make a block's output depend on the block's size (seams).
    pad = tuple(k // 2 for k in kernel)
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel, padding=pad),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv3d(cout, cout, kernel, padding=pad),
        nn.LeakyReLU(0.1, inplace=True),
    )


class UNet3D(nn.Module):
    """U-Net with anisotropic levels.

    Parameters
    ----------
    in_channels : int
    out_channels : int
        One per affinity offset (plus auxiliary targets, if any).
    features : int
        Feature maps at the top level; doubled at each level down.
    downsample : sequence of (z, y, x) factors
        One per level transition; ``(1, 2, 2)`` is in-plane only.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = len(DEFAULT_OFFSETS),
        *,
        features: int = 12,
        downsample=((1, 2, 2), (1, 2, 2), (2, 2, 2)),
    ):
        super().__init__()
        self.downsample = tuple(tuple(d) for d in downsample)
        self.config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "features": features,
            "downsample": [list(d) for d in self.downsample],
        }
        n = len(self.downsample)
        chans = [features * 2**i for i in range(n + 1)]
        # in-plane kernels at the top level (still anisotropic), 3D below
        kernels = [(1, 3, 3) if level < 1 else (3, 3, 3) for level in range(n + 1)]
        self.encoders = nn.ModuleList()
        self.pools = nn.ModuleList()
        cin = in_channels
        for level in range(n):
            self.encoders.append(_conv_block(cin, chans[level], kernels[level]))
            self.pools.append(nn.MaxPool3d(self.downsample[level], self.downsample[level]))
            cin = chans[level]
        self.bottom = _conv_block(cin, chans[n], kernels[n])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(n)):
            self.ups.append(
                nn.ConvTranspose3d(chans[level + 1], chans[level], self.downsample[level], self.downsample[level])
            )
            self.decoders.append(_conv_block(2 * chans[level], chans[level], kernels[level]))
        self.head = nn.Conv3d(chans[0], out_channels, 1)
        # Without normalisation layers the default init shrinks activations level by
        # level; He init for leaky ReLUs keeps them at scale (measured: training loss
        # falls about twice as fast in the first few hundred iterations).
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, a=0.1, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)

    @property
    def factor(self) -> tuple[int, int, int]:
        """Total downsampling (z, y, x): input shapes and block origins must be multiples."""
        f = [1, 1, 1]
        for d in self.downsample:
            f = [a * b for a, b in zip(f, d)]
        return tuple(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, out_channels, Z, Y, X) for raw intensities ``x`` in 0..1."""
        x = (x - 0.5) * 4.0  # centred input: EM intensities cluster around mid-grey
        skips = []
        for enc, pool in zip(self.encoders, self.pools):
            x = enc(x)
            skips.append(x)
            x = pool(x)
        x = self.bottom(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)  # logits; sigmoid gives affinities


def _grown(old: torch.Tensor, shape, in_map, out_map, *, transposed: bool, generator) -> torch.Tensor:
    """A weight of ``shape`` holding ``old`` at the mapped channels, fresh values for new outputs.

    Old output channels read only the old input channels, with their old weights, so
    their values do not change; new output channels read every input with
    He-initialised weights (the rule of :class:`UNet3D`'s own init).
    """
    w = torch.empty(shape, dtype=old.dtype)
    nn.init.kaiming_normal_(w, a=0.1, nonlinearity="leaky_relu", generator=generator)
    outs, ins = torch.as_tensor(out_map), torch.as_tensor(in_map)
    if transposed:  # ConvTranspose3d weights are (in, out, ...)
        w[:, outs] = 0.0
        w[ins[:, None], outs[None, :]] = old
    else:
        w[outs] = 0.0
        w[outs[:, None], ins[None, :]] = old
    return w


def widen(model: UNet3D, features: int, *, seed: int = 0) -> UNet3D:
    """Return ``model`` with ``features`` feature maps at the top level, computing the same function.

    Every layer keeps its trained weights on the channels it had; the added channels
    get fresh weights from all inputs, and zero weights into the channels that were
    there (the function-preserving widening of Chen et al. 2016, in its simplest
    form). Training can then continue from a trained network with more capacity,
    starting at the narrower one's loss instead of from scratch.

    Parameters
    ----------
    model : UNet3D
        The trained network (any device; not changed).
    features : int
        Feature maps at the top level of the result, at least ``model``'s.
    seed : int
        Seed of the added channels' initial weights.

    Returns
    -------
    UNet3D
        A new network on the CPU, in float32.

    Raises
    ------
    ValueError
        If ``features`` is below ``model``'s.
    """
    old_f = model.config["features"]
    if features < old_f:
        raise ValueError(f"cannot widen a {old_f}-feature network to {features} features")
    cfg = dict(model.config)
    new = UNet3D(cfg["in_channels"], cfg["out_channels"], features=features, downsample=cfg["downsample"])
    if features == old_f:
        new.load_state_dict(model.state_dict())
        return new
    n = len(new.downsample)
    old_ch = [old_f * 2**i for i in range(n + 1)]
    new_ch = [features * 2**i for i in range(n + 1)]

    def cat_map(level):  # a decoder's input: [upsampled, skip]
        c, c2 = old_ch[level], new_ch[level]
        return list(range(c)) + [c2 + i for i in range(c)]

    # for every conv: (module path, where its old input channels go, where its old outputs go)
    plan = []
    cin = [list(range(cfg["in_channels"]))]
    for level in range(n):
        plan += [(f"encoders.{level}.0", cin[-1], list(range(old_ch[level]))),
                 (f"encoders.{level}.2", list(range(old_ch[level])), list(range(old_ch[level])))]
        cin.append(list(range(old_ch[level])))
    plan += [("bottom.0", cin[-1], list(range(old_ch[n]))),
             ("bottom.2", list(range(old_ch[n])), list(range(old_ch[n])))]
    for k, level in enumerate(reversed(range(n))):
        plan += [(f"ups.{k}", list(range(old_ch[level + 1])), list(range(old_ch[level]))),
                 (f"decoders.{k}.0", cat_map(level), list(range(old_ch[level]))),
                 (f"decoders.{k}.2", list(range(old_ch[level])), list(range(old_ch[level])))]
    plan.append(("head", list(range(old_ch[0])), list(range(cfg["out_channels"]))))
    old_mods, new_mods = dict(model.named_modules()), dict(new.named_modules())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, in_map, out_map in plan:
            a, b = old_mods[name], new_mods[name]
            transposed = isinstance(b, nn.ConvTranspose3d)
            b.weight.copy_(_grown(a.weight.detach().float().cpu(), b.weight.shape, in_map, out_map,
                                  transposed=transposed, generator=g))
            bias = torch.zeros_like(b.bias)
            bias[torch.as_tensor(out_map)] = a.bias.detach().float().cpu()
            b.bias.copy_(bias)
    return new


#: Arithmetic of inference: ``auto`` (bfloat16 on GPUs and CPUs that run it natively,
#: else float32), ``float32`` or ``bfloat16``. Overridden by ``$CONNECTOMIX_PRECISION``.
PRECISIONS = ("auto", "float32", "bfloat16")

_CONVERT = threading.Lock()


def _native_bf16(device: torch.device) -> bool:
    """Whether ``device`` has bfloat16 arithmetic in hardware (not emulated)."""
    try:
        if device.type == "cuda":
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))  # Ampere and later
        # AVX-512 BF16 or AMX; oneDNN's own test also passes plain AVX-512, where bf16 is emulated
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError, AssertionError):
        return False


def inference_dtype(device: torch.device | str, precision: str | None = None) -> torch.dtype:
    """The dtype the networks compute in on ``device`` (see :data:`PRECISIONS`).

    ``auto`` picks bfloat16 where the device has it in hardware (GPUs from Ampere on; CPUs
    with AVX-512 BF16 or AMX), where it runs about twice as fast as float32 and the
    networks were trained under bfloat16 autocast; float32 elsewhere, where bfloat16
    would be emulated and slower.
    """
    import os

    from ..errors import ConfigError

    device_arg = device
    precision = precision or os.environ.get("CONNECTOMIX_PRECISION") or "auto"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision (CONNECTOMIX_PRECISION) must be one of {', '.join(PRECISIONS)}, "
                          f"got {precision!r}")
    try:
        device = torch.device(device)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'), got {str(device_arg)!r}")
    if precision != "auto":
        return torch.bfloat16 if precision == "bfloat16" else torch.float32
    return torch.bfloat16 if _native_bf16(device) else torch.float32


def check_device(device: str) -> str:
    """``device`` if the networks can run there, else one clear ConfigError (unknown, or CUDA without a GPU)."""
    from ..errors import ConfigError

    if not isinstance(device, (str, torch.device)):
        raise ConfigError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}")
    inference_dtype(device)  # an unknown device (or precision) is refused here
    d = torch.device(device)
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(device)!r} asked for, but this machine has no CUDA GPU; use device 'cpu'")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ConfigError(f"device {str(device)!r} asked for, but this machine has {torch.cuda.device_count()} "
                              "CUDA GPU(s), numbered from 0")
    return device


def precision_name(device: torch.device | str, precision: str | None = None) -> str:
    """:func:`inference_dtype` as a name, ``'float32'`` or ``'bfloat16'`` (recorded with what it computes)."""
    return "bfloat16" if inference_dtype(device, precision) == torch.bfloat16 else "float32"


def forward(model: UNet3D, x, *, precision: str | None = None):
    """Logits of ``model`` for a numpy array ``x`` (N, C, Z, Y, X) in 0..1, as float32 numpy.

    Runs on the model's device, without gradients, in :func:`inference_dtype`'s
    arithmetic, with channels-last memory on CPU (1.7x faster there in float32; the
    model's weights are converted in place, once).
    """
    device = next(model.parameters()).device
    dtype = inference_dtype(device, precision)
    t = torch.from_numpy(x).to(device)
    if device.type == "cpu":
        if not getattr(model, "_channels_last", False):  # (a weight test would pass the 1-channel first layer)
            # once, under a lock (models are shared by the threads of a local cluster), and outside any
            # inference mode of the caller, which would make the weights inference tensors for good
            with _CONVERT, torch.inference_mode(False), torch.no_grad():
                if not getattr(model, "_channels_last", False):
                    model.to(memory_format=torch.channels_last_3d)
                    model._channels_last = True
        t = t.contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        y = model(t)
    return y.to(torch.float32, memory_format=torch.contiguous_format).cpu().numpy()
