"""The real datasets in ../shared/data convert to the event schema and load through staging with
every row accounted for (skipped, with a message, when the data is absent)."""

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from interest_decay.events.adapters import online_retail, taobao
from interest_decay.events.ingest import ingest
from interest_decay.events.synthetic import write_events
from tests.conftest import PROJECT_ROOT, SHARED_DATA, stack_env

RETAIL = SHARED_DATA / "online_retail" / "online_retail.parquet"
TAOBAO = SHARED_DATA / "taobao_userbehavior" / "tb_fullhist_head43users.csv"
needs_data = pytest.mark.skipif(
    not (RETAIL.exists() and TAOBAO.exists()),
    reason=f"real datasets not found under {SHARED_DATA} (set SHARED_DATA_DIR)",
)
KEY = ["user_id", "item_id", "category_id", "event_type", "ts", "value"]


@needs_data
def test_online_retail_conversion_keeps_every_row():
    events = online_retail(RETAIL)
    assert len(events) == 541_909
    assert (events.user_id == "").sum() == 135_080  # guest checkouts, kept for staging to reject
    assert events.event_type.eq("purchase").all()
    assert events.loc[events.item_id == "POST", "category_id"].eq("NON-PRODUCT").all()
    assert events.category_id.nunique() > 200


@needs_data
def test_taobao_conversion_maps_behaviours_and_times():
    events = taobao(TAOBAO)
    assert len(events) == 4_321
    assert set(events.event_type) == {"view", "cart", "fav", "purchase"}
    assert events.ts.str.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$").all()


@needs_data
@pytest.mark.postgres
def test_real_data_reconciles_through_staging(fresh_db, tmp_path):
    name, conninfo = fresh_db
    retail, tb = online_retail(RETAIL), taobao(TAOBAO)
    write_events(retail, tmp_path / "events" / "online_retail.parquet")
    write_events(tb, tmp_path / "events" / "taobao.csv")
    ingest([tmp_path / "events"], conninfo)
    env = stack_env(tmp_path / "state", name)
    run = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build"],
        cwd=PROJECT_ROOT / "dbt_project",
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    with psycopg.connect(conninfo) as conn:
        rows = {
            source: (staged, duplicates, rejected)
            for source, staged, duplicates, rejected in conn.execute(
                "select source, staged_rows, duplicate_rows, rejected_rows from analytics.load_reconciliation"
            )
        }
        reasons = dict(
            conn.execute(
                "select reject_reason, count(*) from analytics.rejected_events "
                "where load_id = (select load_id from raw.loads where source = 'online_retail.parquet') "
                "group by 1"
            )
        )
    guests = (retail.user_id == "").sum()
    returns = ((retail.value < 0) & (retail.user_id != "")).sum()
    valid = retail[(retail.user_id != "") & (retail.value >= 0)]
    assert reasons == {"missing user_id": guests, "negative value": returns}
    assert rows["online_retail.parquet"] == (
        len(valid.drop_duplicates(KEY)),
        len(valid) - len(valid.drop_duplicates(KEY)),
        guests + returns,
    )
    assert rows["taobao.csv"][2] == 0 and sum(rows["taobao.csv"]) == len(tb)
