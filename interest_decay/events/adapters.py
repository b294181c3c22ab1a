"""Converters from the real datasets to the project's event schema (``interest_decay.events.schema``).

Both keep every input row: rows the platform cannot use (guest checkouts, cancellations, unknown
behaviours) are converted as they are and rejected by dbt staging with a reason, so they are counted.

**UCI Online Retail** (invoice lines, purchases only):
- ``user_id`` = CustomerID (as an integer string); empty for guest checkouts (rejected: missing user_id).
- ``item_id`` = StockCode; ``event_type`` = purchase; ``value`` = Quantity (cancellations, whose
  InvoiceNo starts with "C", have negative quantities and are rejected: negative value).
- ``ts`` = InvoiceDate, which the source gives without a zone (UK shop time); read as UTC.
- ``category_id`` is derived, as the source has none: the product's head noun, i.e. the last word of
  its Description (upper case, letters only, a regular plural made singular: "WHITE HANGING HEART
  T-LIGHT HOLDERS" -> "HOLDER", "BOXES" -> "BOX", "CHRISTMAS" stays). Non-product codes
  (POST, DOT, M, BANK CHARGES, AMAZONFEE, ...: StockCodes that do not
  start with a digit) get "NON-PRODUCT"; a missing Description gives "UNKNOWN".

**Taobao UserBehavior** (CSV without header: user_id, item_id, category_id, behavior, unix_ts):
behaviours pv/cart/fav/buy map to view/cart/fav/purchase; the Unix timestamp becomes ISO 8601 UTC.

**MovieLens** (ratings; nobody rates a film twice, the harness's no-repeat case): ML-100K's ``u.data`` (tab-separated
user, item, rating, unix_ts) or ML-1M's ``ratings.dat`` (``::``-separated, same fields). ``event_type`` = rating,
``value`` = the stars; ``category_id`` = the film's first genre, read from the sibling ``u.item`` / ``movies.dat``
(UNKNOWN when that file or the film is missing). The files are GroupLens's, under their licence: not shipped here.

CLI: ``python -m interest_decay.events.adapters online-retail IN.parquet OUT.parquet`` (or ``taobao IN.csv``,
``movielens u.data``)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

TAOBAO_BEHAVIOURS = {"pv": "view", "cart": "cart", "fav": "fav", "buy": "purchase"}


def retail_category(description: pd.Series, stock_code: pd.Series) -> pd.Series:
    """Head noun of each Description; NON-PRODUCT for service codes, UNKNOWN when missing."""
    words = description.fillna("").str.upper().str.findall(r"[A-Z]+")
    head = words.map(lambda w: w[-1] if w else "UNKNOWN")
    head = head.str.replace(r"(X|CH|SH)ES$", r"\1", regex=True)
    head = head.str.replace(r"([A-Z]{2}[^SUIA])S$", r"\1", regex=True)
    return head.where(stock_code.astype(str).str.match(r"^\d"), "NON-PRODUCT")


def online_retail(path: Path) -> pd.DataFrame:
    raw = pd.read_parquet(path)
    customer = raw["CustomerID"].astype("Int64").astype("string").fillna("")
    return pd.DataFrame(
        {
            "user_id": customer,
            "item_id": raw["StockCode"].astype(str),
            "category_id": retail_category(raw["Description"], raw["StockCode"]),
            "event_type": "purchase",
            "ts": pd.to_datetime(raw["InvoiceDate"]).dt.tz_localize("UTC"),
            "value": raw["Quantity"].astype(float),
        }
    )


def taobao(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(
        path,
        header=None,
        names=["user_id", "item_id", "category_id", "behavior", "unix_ts"],
        dtype=str,
        keep_default_na=False,
    )
    seconds = pd.to_numeric(raw["unix_ts"], errors="coerce")
    return pd.DataFrame(
        {
            "user_id": raw["user_id"],
            "item_id": raw["item_id"],
            "category_id": raw["category_id"],
            "event_type": raw["behavior"].map(TAOBAO_BEHAVIOURS).fillna(raw["behavior"]),
            "ts": pd.to_datetime(seconds, unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ").fillna(raw["unix_ts"]),
            "value": float("nan"),
        }
    )


ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def movielens_genres(ratings: Path) -> pd.Series:
    """First genre per film id (index: the id as a string), from the file beside ``ratings``; empty if absent."""
    if ratings.name == "ratings.dat" and (ratings.parent / "movies.dat").exists():
        films = pd.read_csv(
            ratings.parent / "movies.dat", sep="::", engine="python", header=None, encoding="latin-1", dtype=str
        )
        return pd.Series(films[2].str.split("|").str[0].to_numpy(), index=films[0])
    if (ratings.parent / "u.item").exists():
        films = pd.read_csv(ratings.parent / "u.item", sep="|", header=None, encoding="latin-1", dtype=str)
        flags = films.iloc[:, 5 : 5 + len(ML100K_GENRES)].astype(int).to_numpy()
        first = [ML100K_GENRES[row.argmax()] if row.any() else "unknown" for row in flags]
        return pd.Series(first, index=films[0])
    return pd.Series(dtype=str)


def movielens(path: Path) -> pd.DataFrame:
    separator = "::" if path.suffix == ".dat" else "\t"
    raw = pd.read_csv(
        path, sep=separator, engine="python", header=None, names=["user_id", "item_id", "rating", "unix_ts"], dtype=str
    )
    seconds = pd.to_numeric(raw["unix_ts"], errors="coerce")
    return pd.DataFrame(
        {
            "user_id": raw["user_id"],
            "item_id": raw["item_id"],
            "category_id": raw["item_id"].map(movielens_genres(path)).fillna("UNKNOWN"),
            "event_type": "rating",
            "ts": pd.to_datetime(seconds, unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ").fillna(raw["unix_ts"]),
            "value": pd.to_numeric(raw["rating"], errors="coerce"),
        }
    )


ADAPTERS = {"online-retail": online_retail, "taobao": taobao, "movielens": movielens}


def convert_dataset(paths: list[Path], dataset: str, out_dir: Path) -> list[Path]:
    """Convert every file of ``paths`` (files or folders) from ``dataset``'s own format into event-schema
    Parquet files in ``out_dir`` (``<name>.<dataset>.parquet``); the same input gives the same bytes, so
    ingesting a conversion twice loads it once (ingest is idempotent by file hash)."""
    from interest_decay.events.synthetic import write_events

    if dataset not in ADAPTERS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(sorted(ADAPTERS))}")
    pattern = {"online-retail": "*.parquet", "taobao": "*.csv", "movielens": "u.data"}[dataset]
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob(pattern)))
    if not files:
        raise FileNotFoundError(f"no {pattern} files of {dataset} under {', '.join(map(str, paths))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    converted = []
    for source in files:
        target = out_dir / f"{source.stem}.{dataset}.parquet"
        write_events(ADAPTERS[dataset](source), target)
        converted.append(target)
    return converted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m interest_decay.events.adapters",
        description="Convert a real dataset into the project's event schema.",
    )
    parser.add_argument("dataset", choices=sorted(ADAPTERS), help="which dataset the input file is")
    parser.add_argument(
        "source", type=Path, help="input file (Online Retail parquet, Taobao CSV, MovieLens u.data / ratings.dat)"
    )
    parser.add_argument("out", type=Path, help="output file, .parquet or .csv")
    args = parser.parse_args(argv)
    from interest_decay.events.synthetic import write_events

    events = ADAPTERS[args.dataset](args.source)
    write_events(events, args.out)
    print(f"wrote {len(events):,} events ({events.category_id.nunique():,} categories) to {args.out}")


if __name__ == "__main__":
    main()
