"""Synthetic behaviour events whose interest decays at known, documented rates.

Generative story (deterministic for a given seed):

1. Each user has "interest episodes": at an onset time ``s`` the user becomes interested in a
   category ``c`` (categories are chosen with Zipf-like popularity, onsets uniformly in the window).
2. An episode emits ``1 + Poisson(mu - 1)`` events, ``mu`` log-normal around ``events_per_episode``.
   Event times are ``s + Exponential(mean = 1 / k_c)``: the episode's event rate is
   ``I0 * e^(-k_c (t - s))``, exponential decay with the category's half-life ``ln 2 / k_c``.
3. Each event gets an item of the category (Zipf-like within the category) and an event type
   (view 70%, cart 12%, fav 8%, purchase 8%, rating 2%); purchases carry a quantity, ratings 1-5.
4. Events after ``end`` are cut; the remaining events are thinned at random to exactly
   ``n_events`` (thinning a Poisson process keeps its decay rate).

Category half-lives run geometrically from ``min_half_life`` to ``max_half_life`` days
(``half_lives(n)`` lists them): category "1" fades fastest, the last category slowest.

CLI: ``python -m interest_decay.events.synthetic --events 100000 --out events.parquet``
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd

from interest_decay.decay import LN2

EVENT_TYPE_MIX = {"view": 0.70, "cart": 0.12, "fav": 0.08, "purchase": 0.08, "rating": 0.02}


def half_lives(n_categories: int, min_half_life: float = 0.5, max_half_life: float = 30.0) -> np.ndarray:
    """Half-life in days of each category, geometric from ``min_half_life`` to ``max_half_life``."""
    if n_categories == 1:
        return np.array([min_half_life])
    return min_half_life * (max_half_life / min_half_life) ** (np.arange(n_categories) / (n_categories - 1))


def category_ids(n_categories: int) -> list[str]:
    return [str(c + 1) for c in range(n_categories)]


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return np.cumsum(weights) / weights.sum()


def generate(
    n_events: int,
    *,
    n_users: int | None = None,
    n_categories: int = 20,
    items_per_category: int = 50,
    days: float = 60.0,
    end: dt.datetime | None = None,
    events_per_episode: float = 8.0,
    min_half_life: float = 0.5,
    max_half_life: float = 30.0,
    seed: int = 0,
    return_episodes: bool = False,
):
    """Return a DataFrame of exactly ``n_events`` events in the project's schema, sorted by ``ts``.

    ``end`` (UTC, exclusive) defaults to today's midnight; events span ``days`` before it.
    With ``return_episodes`` the events keep an ``episode`` column and the episodes (user, category,
    onset, k) that made them come back too.
    """
    if n_events < 1:
        raise ValueError("n_events must be >= 1")
    rng = np.random.default_rng(seed)
    end = end or dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end_s = end.timestamp()
    window_s = days * 86400.0
    n_users = n_users or max(20, n_events // 100)
    k_per_day = LN2 / half_lives(n_categories, min_half_life, max_half_life)
    category_cdf = _zipf_cdf(n_categories, 0.8)
    item_cdf = _zipf_cdf(items_per_category, 1.1)

    batches, episode_batches, total, next_episode = [], [], 0, 0
    while total < n_events:
        n_episodes = max(16, math.ceil((n_events - total) / events_per_episode * 1.5))
        user = rng.integers(0, n_users, n_episodes)
        cat = np.searchsorted(category_cdf, rng.random(n_episodes))
        onset = end_s - window_s * rng.random(n_episodes)
        mu = events_per_episode * rng.lognormal(0.0, 0.5, n_episodes) / math.exp(0.125)
        count = 1 + rng.poisson(np.maximum(mu - 1.0, 0.0))
        episode = np.repeat(np.arange(next_episode, next_episode + n_episodes), count)
        local = episode - next_episode
        ts = onset[local] + rng.exponential(1.0 / k_per_day[cat[local]]) * 86400.0
        keep = ts < end_s
        batches.append((episode[keep], user[local][keep], cat[local][keep], ts[keep]))
        episode_batches.append(
            pd.DataFrame(
                {
                    "episode": np.arange(next_episode, next_episode + n_episodes),
                    "user_id": [f"u{u}" for u in user],
                    "category_id": (cat + 1).astype(str),
                    "onset": pd.to_datetime(onset, unit="s", utc=True),
                    "k_per_day": k_per_day[cat],
                }
            )
        )
        total += int(keep.sum())
        next_episode += n_episodes

    episode, user, cat, ts = (np.concatenate(parts) for parts in zip(*batches))
    chosen = np.sort(rng.choice(episode.size, n_events, replace=False))
    episode, user, cat, ts = episode[chosen], user[chosen], cat[chosen], ts[chosen]

    item = np.searchsorted(item_cdf, rng.random(n_events))
    types = np.array(list(EVENT_TYPE_MIX))
    event_type = types[np.searchsorted(np.cumsum(list(EVENT_TYPE_MIX.values())), rng.random(n_events) * 0.999999)]
    value = np.full(n_events, np.nan)
    is_purchase, is_rating = event_type == "purchase", event_type == "rating"
    value[is_purchase] = rng.integers(1, 4, is_purchase.sum())
    value[is_rating] = rng.integers(1, 6, is_rating.sum())

    events = (
        pd.DataFrame(
            {
                "user_id": pd.Series(user).map(lambda u: f"u{u}"),
                "item_id": (cat * items_per_category + item + 1).astype(str),
                "category_id": (cat + 1).astype(str),
                "event_type": event_type,
                "ts": pd.to_datetime(ts, unit="s", utc=True).floor("s"),
                "value": value,
                "_episode": episode,
            }
        )
        .sort_values(["ts", "user_id", "item_id"], kind="stable")
        .reset_index(drop=True)
    )
    episodes = pd.concat(episode_batches, ignore_index=True)
    episodes = episodes[episodes["episode"].isin(np.unique(events["_episode"]))]
    if return_episodes:
        return events.rename(columns={"_episode": "episode"}), episodes.reset_index(drop=True)
    return events.drop(columns="_episode")


def write_events(events: pd.DataFrame, out: Path) -> Path:
    """Write events as Parquet or CSV (by suffix); CSV timestamps are ISO 8601 in UTC."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        events.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        events.to_csv(out, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    else:
        raise ValueError(f"{out}: write .csv or .parquet")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m interest_decay.events.synthetic",
        description="Write synthetic behaviour events whose per-category interest decays with known half-lives.",
    )
    parser.add_argument("--events", type=int, default=100_000, help="number of events to write (default 100000)")
    parser.add_argument("--users", type=int, default=None, help="number of users (default events/100)")
    parser.add_argument("--categories", type=int, default=20, help="number of categories (default 20)")
    parser.add_argument("--items-per-category", type=int, default=50, help="items per category (default 50)")
    parser.add_argument("--days", type=float, default=60.0, help="length of the window in days (default 60)")
    parser.add_argument(
        "--end",
        type=dt.date.fromisoformat,
        default=None,
        help="UTC date the window ends (exclusive), YYYY-MM-DD (default today)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet")
    args = parser.parse_args(argv)
    end = dt.datetime.combine(args.end, dt.time(), dt.UTC) if args.end else None
    events = generate(
        args.events,
        n_users=args.users,
        n_categories=args.categories,
        items_per_category=args.items_per_category,
        days=args.days,
        end=end,
        seed=args.seed,
    )
    write_events(events, args.out)
    table = ", ".join(f"{c}: {h:.2f} d" for c, h in zip(category_ids(args.categories), half_lives(args.categories)))
    print(f"wrote {len(events):,} events of {events.user_id.nunique():,} users to {args.out}")
    print(f"category half-lives: {table}")


if __name__ == "__main__":
    main()
