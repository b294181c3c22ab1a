"""Follow-up histograms: what a per-kind decay fit needs from the events (``models.fitting.decay_kinds`` fits them).

An *anchor* is an event; its *follow-ups* are the same user's later events in the same category. For every
kind (category × event type), every category pooled (c, '*') and all events ('*', '*'), and per user group
(by hash of the user id), the histograms count the follow-ups in log-spaced bins of τ (days after the
anchor) and the exposure of each bin: the days of it that the anchors' windows cover (a window ends at the
horizon or the cutoff), plain and weighted by the category's relative activity at the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DAY_S = 86400.0
ANY = "*"
DEFAULT_CONFIG = Path(__file__).with_name("decay_kinds.yaml")


@dataclass(frozen=True)
class FitConfig:
    """Settings of a decay fit; ``models/fitting/decay_kinds.yaml`` holds their values and says what each means."""

    horizon_days: float
    burn_in_days: float
    min_gap_days: float
    first_bin_days: float
    bins: int
    min_anchors: int
    groups: int
    bootstrap: int
    period_days: float
    period_buckets: int
    families: tuple[str, ...]
    seed: int

    @classmethod
    def load(cls, path: Path = DEFAULT_CONFIG, **overrides) -> FitConfig:
        import yaml

        values = {**yaml.safe_load(Path(path).read_text()), **overrides}
        return cls(**{**values, "families": tuple(values["families"])})


class FitError(ValueError):
    """The events cannot give a decay fit (no events, one user, no follow-ups); the message says why."""


@dataclass
class Histograms:
    """Follow-up counts and exposure per (kind, user group, τ bin)."""

    kinds: pd.MultiIndex  # (category_id, event_type) of each row; '*' rows pool over that level
    counts: np.ndarray  # [K, G, B] follow-up events
    exposure: np.ndarray  # [K, G, 2, B] anchor-days of each bin; [..., 1, :] weighted by the category's
    #   relative activity at the time (the background's exposure)
    anchors: np.ndarray  # [K] anchor events
    users: np.ndarray  # [K] users with an anchor
    edges: np.ndarray  # [B + 1] bin edges in days
    span_days: float = 0.0

    def subset(self, rows: np.ndarray) -> Histograms:
        """The histograms of the kinds at positions ``rows``."""
        return Histograms(
            self.kinds[rows],
            self.counts[rows],
            self.exposure[rows],
            self.anchors[rows],
            self.users[rows],
            self.edges,
            self.span_days,
        )


def bin_edges(cfg: FitConfig) -> np.ndarray:
    """``min_gap_days`` (0: follow-ups at any τ > 0 count), then log-spaced edges from ``first_bin_days`` to
    ``horizon_days``."""
    first = max(cfg.first_bin_days, 1.25 * cfg.min_gap_days)
    return np.concatenate([[cfg.min_gap_days], np.geomspace(first, cfg.horizon_days, cfg.bins)])


def follow_up_histograms(events: pd.DataFrame, cutoff: pd.Timestamp, cfg: FitConfig) -> Histograms:
    """Histograms of every kind, every category pooled (c, '*') and all events pooled ('*', '*').

    ``events``: user_id, category_id, event_type, ts (UTC) — staged events; those at or after ``cutoff``
    are left out. A follow-up is a later event (τ > 0) of the same user in the same category, any type.
    """
    events = events.loc[events["ts"] < cutoff, ["user_id", "category_id", "event_type", "ts"]]
    edges = bin_edges(cfg)
    seconds = ((events["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
    stream = pd.MultiIndex.from_frame(events[["user_id", "category_id"]].astype(str)).factorize()[0]
    order = np.lexsort((seconds, stream))
    key = stream[order].astype(np.int64) * 10**11 + seconds[order]
    n_bins = len(edges) - 1
    counts = np.empty((len(key), n_bins), dtype=np.int64)
    edge_seconds = np.round(edges * DAY_S).astype(np.int64)
    for lo in range(0, len(key), 200_000):  # bounded memory: [chunk, B + 1] positions at a time
        chunk = key[lo : lo + 200_000]
        positions = np.searchsorted(key, chunk[:, None] + edge_seconds[None, :], side="right")
        counts[lo : lo + len(chunk)] = np.diff(positions, axis=1)
    window = np.minimum(cfg.horizon_days, (cutoff.timestamp() - seconds[order]) / DAY_S)  # [N] days
    exposure = np.clip(window[:, None] - edges[None, :-1], 0.0, np.diff(edges)[None, :])  # [N, B]
    frame = events.iloc[order]
    background = activity_exposure(
        frame["category_id"].astype(str).to_numpy(), seconds[order] / DAY_S, edges, window, cutoff.timestamp() / DAY_S
    )
    # Anchors of the first burn_in_days are left out (their events still count as follow-ups): just after the
    # data start, a user's activity has no earlier history, and the episodes then seen have just begun.
    anchor = (seconds[order] >= seconds.min() + cfg.burn_in_days * DAY_S) if len(seconds) else np.ones(0, bool)
    counts, exposure, background = counts * anchor[:, None], exposure * anchor[:, None], background * anchor[:, None]
    users = frame["user_id"].astype(str).to_numpy()
    group = (pd.util.hash_array(users, categorize=True) % cfg.groups).astype(np.int64)
    levels = [("category_id", "event_type"), ("category_id",), ()]
    parts = []
    for level in levels:
        kind = pd.DataFrame(
            {c: (frame[c].astype(str).to_numpy() if c in level else ANY) for c in ("category_id", "event_type")},
            index=range(len(frame)),
        )
        parts.append(kind)
    kinds_frame = pd.concat(parts, ignore_index=True)
    codes, kinds = pd.MultiIndex.from_frame(kinds_frame).factorize()
    row = codes * cfg.groups + np.tile(group, len(levels))
    size = len(kinds) * cfg.groups
    hist_counts = np.zeros((size, n_bins))
    hist_exposure = np.zeros((size, n_bins))
    hist_background = np.zeros((size, n_bins))
    for b in range(n_bins):
        hist_counts[:, b] = np.bincount(row, np.tile(counts[:, b].astype(float), len(levels)), minlength=size)
        hist_exposure[:, b] = np.bincount(row, np.tile(exposure[:, b], len(levels)), minlength=size)
        hist_background[:, b] = np.bincount(row, np.tile(background[:, b], len(levels)), minlength=size)
    anchors = np.bincount(codes, np.tile(anchor, len(levels)).astype(float), minlength=len(kinds)).astype(np.int64)
    anchoring = np.tile(anchor, len(levels))
    user_codes = np.tile(pd.factorize(users)[0], len(levels))
    users_per_kind = (
        pd.Series(user_codes[anchoring]).groupby(codes[anchoring]).nunique().reindex(range(len(kinds)), fill_value=0)
    )
    span = (seconds.max() - seconds.min()) / DAY_S if len(seconds) else 0.0
    shape = (len(kinds), cfg.groups, n_bins)
    exposures = np.stack([hist_exposure.reshape(shape), hist_background.reshape(shape)], axis=2)
    return Histograms(kinds, hist_counts.reshape(shape), exposures, anchors, users_per_kind.to_numpy(), edges, span)


def activity_exposure(
    category: np.ndarray, day: np.ndarray, edges: np.ndarray, window: np.ndarray, end_day: float, smooth_days: int = 7
) -> np.ndarray:
    """``[N, B]``: each anchor's exposure to its category's activity, ``∫ r(t_e + τ) dτ`` over each bin within
    its window, where ``r`` is the category's daily event count (all users, a centred ``smooth_days`` mean)
    divided by its mean. A category whose activity grows, falls or has seasons would otherwise shift the
    background under the decay (rising activity looks like slower decay)."""
    out = np.zeros((len(day), len(edges) - 1))
    first = math.floor(day.min()) if len(day) else 0
    n_days = max(int(math.ceil(end_day)) - first, 1) + int(math.ceil(edges[-1])) + 1
    kernel = np.ones(smooth_days) / smooth_days
    observed = int(math.ceil(end_day)) - first
    grid = np.arange(n_days + 1, dtype=float)
    codes, _ = pd.factorize(category)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(codes.max() + 2 if len(codes) else 1))
    for lo_i, hi_i in zip(bounds[:-1], bounds[1:]):
        mine = order[lo_i:hi_i]
        start = day[mine] - first  # [n] anchor time in days
        daily = np.bincount(start.astype(np.int64), minlength=n_days)[:observed].astype(float)
        rate = np.convolve(daily, kernel, mode="same") / np.convolve(
            np.ones(observed), kernel, mode="same"
        )  # a mean at the edges too
        rate = np.maximum(rate / max(rate.mean(), 1e-12), 0.05)  # relative activity, > 0
        rate = np.concatenate([rate, np.full(n_days - observed, rate[-smooth_days:].mean())])
        cumulative = np.concatenate([[0.0], np.cumsum(rate)])  # ∫ r from `first`, at whole days
        lo = start[:, None] + np.minimum(edges[None, :-1], window[mine][:, None])
        hi = start[:, None] + np.minimum(edges[None, 1:], window[mine][:, None])
        out[mine] = np.interp(hi, grid, cumulative) - np.interp(lo, grid, cumulative)
    return out
