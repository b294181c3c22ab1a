"""Dataset conversion on ingest (the DAG's Param ``dataset``): a Taobao file becomes event-schema Parquet,
every row kept, the same bytes each time (so ingesting it twice loads it once)."""

import pandas as pd
import pytest

from interest_decay.events.adapters import convert_dataset
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
    with pytest.raises(FileNotFoundError, match="no .csv files of taobao"):
        convert_dataset([tmp_path], "taobao", tmp_path / "out")
