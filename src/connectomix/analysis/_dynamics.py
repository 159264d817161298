"""Activity on the wiring: a leaky integrate-and-fire network and a linear rate model.

The LIF model follows Shiu et al. 2024 (Nature 634:210, doi:10.1038/s41586-024-07763-9):
``dv/dt = (g - (v - v0)) / tau_m``, ``dg/dt = -g / tau_syn``; a spike of neuron j
adds ``w_syn * sign_j * n_synapses(j -> i)`` to ``g_i`` after a fixed delay and resets
``v`` to ``v_reset`` and ``g`` to 0; stimulated neurons get Poisson input that adds
``poisson_weight`` to ``v`` and have no refractory period. Both variables are frozen
during the refractory period. The state is advanced with the exact propagator of the
linear system, so a step of ``dt`` has no integration error; a test checks the rates
against Brian2 running the same model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from ._common import check_connectome, resolve_nodes
from ._motifs import transmitter_signs

__all__ = ["simulate_lif", "lif_rate", "linear_response"]


def lif_rate(drive_mv: float, *, v_threshold: float = -45.0, v_rest: float = -52.0,
             tau_m_ms: float = 20.0, refractory_ms: float = 2.2) -> float:
    """Return the analytic firing rate (Hz) of a LIF neuron under a constant drive.

    Parameters
    ----------
    drive_mv : float
        Constant input, as a shift of the resting potential (mV); reset = rest.
    v_threshold, v_rest : float
        Threshold and rest/reset potentials (mV).
    tau_m_ms, refractory_ms : float
        Membrane time constant and refractory period (ms).

    Returns
    -------
    float
        ``1 / (t_ref + tau_m ln(I / (I - (v_th - v_rest))))``; 0 below threshold.
    """
    gap = v_threshold - v_rest
    if drive_mv <= gap:
        return 0.0
    isi = refractory_ms + tau_m_ms * np.log(drive_mv / (drive_mv - gap))
    return float(1000.0 / isi)


def _propagator(dt: float, tau_m: float, tau_s: float) -> tuple[float, float, float]:
    a = np.exp(-dt / tau_m)
    c = np.exp(-dt / tau_s)
    if np.isclose(tau_m, tau_s):
        b = dt / tau_m * a
    else:
        b = tau_s / (tau_s - tau_m) * (c - a)
    return float(a), float(b), float(c)


def _row_entries(w: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the given CSR rows, touching only their nonzeros."""
    starts = w.indptr[rows]
    lengths = w.indptr[rows + 1] - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=w.indices.dtype), np.zeros(0)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    idx = offsets + np.arange(total)
    return w.indices[idx], w.data[idx]


def simulate_lif(
    connectome,
    *,
    stimulate=None,
    duration_ms: float = 1000.0,
    dt_ms: float = 0.1,
    rate_hz: float = 150.0,
    v_rest: float = -52.0,
    v_reset: float = -52.0,
    v_threshold: float = -45.0,
    tau_m_ms: float = 20.0,
    tau_syn_ms: float = 5.0,
    refractory_ms: float = 2.2,
    refractory_stimulated_ms: float = 0.0,
    delay_ms: float = 1.8,
    w_syn_mv: float = 0.275,
    poisson_weight_mv: float = 0.275 * 250,
    drive_mv=0.0,
    signs=None,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Simulate a leaky integrate-and-fire network on the chemical synapses.

    Parameters
    ----------
    connectome : Connectome
    stimulate : iterable of int segment ids or str names, or boolean mask, optional
        Neurons driven by Poisson input at ``rate_hz``.
    duration_ms, dt_ms : float
        Simulated time and step (ms).
    rate_hz : float
        Poisson rate of the stimulus.
    v_rest, v_reset, v_threshold : float
        Potentials (mV); defaults of Shiu et al. 2024 (-52, -52, -45).
    tau_m_ms, tau_syn_ms, refractory_ms, delay_ms : float
        Membrane and synaptic time constants, refractory period, synaptic delay (ms):
        20, 5, 2.2, 1.8.
    refractory_stimulated_ms : float
        Refractory period of the stimulated neurons (0, as in Shiu et al.).
    w_syn_mv : float
        Jump of ``g`` per synapse (0.275 mV), signed by the presynaptic transmitter.
    poisson_weight_mv : float
        Jump of ``v`` per Poisson input spike (250 x w_syn, as in Shiu et al.).
    drive_mv : float or array of shape (n,)
        Constant drive added to the resting potential (for tests and tonic input).
    signs : mapping of str to int, optional
        Transmitter signs (see :func:`transmitter_signs`); unknown = excitatory.
    seed : int or None
        Seed of the Poisson input.

    Returns
    -------
    pandas.DataFrame
        Index ``segment_id``; ``name``, ``n_spikes``, ``rate_hz``, ``stimulated``.

    Notes
    -----
    One step follows Brian2's default schedule, so that the model equals the
    Brian2 model of Shiu et al. (``method="linear"``, ``v > v_th``, reset
    ``v = v_reset; g = 0``, ``unless refractory`` on both variables): advance the
    neurons that are not refractory with the exact propagator of the linear system;
    detect spikes (``v > v_threshold``); deliver the synaptic input of spikes made
    ``delay_ms`` earlier (``g += w``) and the Poisson input (``v += w``, each step
    with probability ``rate_hz * dt``, like ``PoissonInput(N=1)``); reset the
    neurons that spiked. Input that arrives while a neuron is refractory is lost, as
    in Brian2, where variables marked ``unless refractory`` accept no writes then.
    Each step costs a few vectorised O(n) operations plus
    O(synapses of the neurons that spiked); no dense matrix is formed.
    """
    c = check_connectome(connectome)
    n = c.n_neurons
    if dt_ms <= 0 or duration_ms < 0:
        raise ValueError(f"dt_ms must be > 0 and duration_ms >= 0, got {dt_ms}, {duration_ms}")
    steps = int(round(duration_ms / dt_ms))
    delay = max(1, int(round(delay_ms / dt_ms)))
    ref_steps = int(round(refractory_ms / dt_ms))
    ref_stim_steps = int(round(refractory_stimulated_ms / dt_ms))
    sign = transmitter_signs(c, signs=signs).astype(np.float64)
    w = c.adjacency("chemical", weight="n_synapses").tocsr(copy=True)
    w = sp.csr_matrix(sp.diags(sign * w_syn_mv) @ w)  # row = presynaptic
    w.sort_indices()
    stim = np.zeros(n, dtype=bool)
    if stimulate is not None:
        stim[resolve_nodes(c, stimulate, what="stimulated neurons")] = True
    stim_idx = np.flatnonzero(stim)
    refractory = np.where(stim, ref_stim_steps, ref_steps).astype(np.int64)
    drive = np.asarray(drive_mv, dtype=np.float64)
    if drive.ndim and drive.shape != (n,):
        raise ValueError(f"drive_mv must be a number or have shape ({n},), got {drive.shape}")
    a, b, cc = _propagator(dt_ms, tau_m_ms, tau_syn_ms)
    # v <- a (v - base) + b g + base  ==  a v + b g + (1 - a) base
    offset = (1.0 - a) * (v_rest + drive)
    rng = np.random.default_rng(seed)
    p_spike = rate_hz * dt_ms / 1000.0

    v = np.full(n, v_reset, dtype=np.float64)
    g = np.zeros(n)
    tmp = np.empty(n)
    frozen_until = np.zeros(n, dtype=np.int64)  # refractory while step < frozen_until (Brian2: t - lastspike < refractory)
    max_ref = int(refractory.max()) if n else 0
    recent: list[np.ndarray] = []  # spikes of the last max_ref steps (the refractory ones)
    queue: list = [None] * delay  # synaptic input waiting for its step
    counts = np.zeros(n, dtype=np.int64)
    for t in range(steps):
        frozen = np.concatenate(recent) if recent else None
        if frozen is not None:
            frozen = frozen[frozen_until[frozen] > t]
            v_keep, g_keep = v[frozen], g[frozen]
        v *= a
        np.multiply(g, b, out=tmp)
        v += tmp
        v += offset
        g *= cc
        if frozen is not None and frozen.size:
            v[frozen], g[frozen] = v_keep, g_keep
        spiking = np.flatnonzero(v > v_threshold)
        if spiking.size and frozen is not None and frozen.size:
            spiking = spiking[frozen_until[spiking] <= t]
        slot = t % delay
        pending = queue[slot]
        if pending is not None:
            idx, val = pending
            if idx.size > n // 8:
                g += np.bincount(idx, weights=val, minlength=n)
            else:
                np.add.at(g, idx, val)
            queue[slot] = None
        if stim_idx.size:
            kicked = stim_idx[rng.random(stim_idx.size) < p_spike]
            v[kicked] += poisson_weight_mv
        if frozen is not None and frozen.size:
            # Brian2 writes to "unless refractory" variables only outside refractoriness
            v[frozen], g[frozen] = v_keep, g_keep
        if spiking.size:
            counts[spiking] += 1
            v[spiking] = v_reset
            g[spiking] = 0.0
            frozen_until[spiking] = t + refractory[spiking]
            queue[slot] = _row_entries(w, spiking)  # delivered at step t + delay
        if max_ref:
            recent.append(spiking)
            if len(recent) > max_ref:
                recent.pop(0)
    return pd.DataFrame(
        {
            "name": c._neurons["name"].to_numpy(),
            "n_spikes": counts,
            "rate_hz": counts / (steps * dt_ms / 1000.0) if steps else np.zeros(n),
            "stimulated": stim,
        },
        index=pd.Index(c._neurons["segment_id"].to_numpy(), name="segment_id"),
    )


def linear_response(connectome, stimulate, *, gain: float = 0.9, signs=None) -> pd.Series:
    """Return the steady state of a linear rate model driven at some neurons.

    Parameters
    ----------
    connectome : Connectome
    stimulate : iterable of int segment ids or str names, or boolean mask
        Neurons with unit input.
    gain : float
        Spectral radius of the scaled signed weight matrix (< 1 keeps it stable).
    signs : mapping of str to int, optional
        Transmitter signs (see :func:`transmitter_signs`).

    Returns
    -------
    pandas.Series
        Index ``segment_id``; r solving ``r = gain * W_hat.T r + s``, where ``W_hat``
        is the signed synapse-count matrix divided by its spectral radius.
    """
    c = check_connectome(connectome)
    n = c.n_neurons
    sign = transmitter_signs(c, signs=signs).astype(np.float64)
    w = sp.csr_matrix(sp.diags(sign) @ c.adjacency("chemical", weight="n_synapses"))
    radius = _spectral_radius(w)
    s = np.zeros(n)
    s[resolve_nodes(c, stimulate, what="stimulated neurons")] = 1.0
    if radius > 0:
        system = sp.identity(n, format="csc") - (gain / radius) * w.T.tocsc()
        r = spsolve(system, s)
    else:
        r = s
    return pd.Series(np.asarray(r, dtype=float), name="rate",
                     index=pd.Index(c._neurons["segment_id"].to_numpy(), name="segment_id"))


def _spectral_radius(w: sp.csr_matrix) -> float:
    if w.nnz == 0:
        return 0.0
    if w.shape[0] <= 2000:
        return float(np.max(np.abs(np.linalg.eigvals(w.toarray()))))
    from scipy.sparse.linalg import eigs

    vals = eigs(w.astype(np.float64), k=1, which="LM", return_eigenvectors=False, maxiter=5000)
    return float(np.abs(vals[0]))
