"""Dataset conversion on ingest (the DAG's Param ``dataset``): a Taobao file becomes event-schema Parquet,
every row kept, the same bytes each time (so ingesting it twice loads it once)."""

import pandas as pd
import pytest

from interest_decay.events.adapters import convert_dataset, movielens
from interest_decay.events.schema import EVENT_COLUMNS

TAOBAO_ROWS = "1,10,100,pv,1511544070\n1,11,100,buy,1511544100\n2,12,200,teleport,1511544200\n"


def test_a_taobao_folder_converts_to_event_schema_files_row_for_row(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "part1.csv").write_text(TAOBAO_ROWS)
    first = convert_dataset([tmp_path / "in"], "taobao", tmp_path / "out")
    assert [p.name for p in first] == ["part1.taobao.parquet"]
    events = pd.read_parquet(first[0])
    assert list(events.columns) == list(EVENT_COLUMNS) and len(events) == 3
    assert events["event_type"].tolist() == ["view", "purchase", "teleport"]  # staging rejects the last, counted
    assert events["ts"].iloc[0] == "2017-11-24T17:21:10Z"
    before = first[0].read_bytes()
    convert_dataset([tmp_path / "in" / "part1.csv"], "taobao", tmp_path / "out")
    assert first[0].read_bytes() == before


def test_unknown_datasets_and_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'amazon'"):
        convert_dataset([tmp_path], "amazon", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"no \*.csv files of taobao"):
        convert_dataset([tmp_path], "taobao", tmp_path / "out")


def test_movielens_100k_and_1m_ratings_become_rating_events_with_the_first_genre(tmp_path):
    (tmp_path / "100k").mkdir()
    (tmp_path / "100k" / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t5\t891717742\n")
    genres = ["0"] * 19
    comedy, noir = genres.copy(), genres.copy()
    comedy[5] = comedy[8] = "1"  # Comedy and Drama: the first is kept
    noir[10] = "1"
    (tmp_path / "100k" / "u.item").write_text(
        "242|Kolya (1996)|24-Jan-1997||http://x|" + "|".join(comedy) + "\n"
        "302|L.A. Confidential (1997)|01-Jan-1997||http://x|" + "|".join(noir) + "\n"
    )
    events = movielens(tmp_path / "100k" / "u.data")
    assert events["category_id"].tolist() == ["Comedy", "Film-Noir"]
    assert events["event_type"].eq("rating").all() and events["value"].tolist() == [3, 5]
    assert events["ts"].iloc[0] == "1997-12-04T15:55:49Z"
    converted = convert_dataset([tmp_path / "100k"], "movielens", tmp_path / "out")
    assert [p.name for p in converted] == ["u.movielens.parquet"]

    (tmp_path / "1m").mkdir()
    (tmp_path / "1m" / "ratings.dat").write_text("1::1193::5::978300760\n1::9999::3::978302109\n")
    (tmp_path / "1m" / "movies.dat").write_text("1193::One Flew Over the Cuckoo's Nest (1975)::Drama|Comedy\n")
    events = movielens(tmp_path / "1m" / "ratings.dat")
    assert events["category_id"].tolist() == ["Drama", "UNKNOWN"]  # a film missing from movies.dat
    assert events[["user_id", "item_id"]].values.tolist() == [["1", "1193"], ["1", "9999"]]
