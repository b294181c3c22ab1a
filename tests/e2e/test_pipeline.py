"""End to end: the Airflow DAG under `airflow dags test` on a small synthetic dataset, then the built
bento under `bentoml serve`, called over HTTP.

Two probe users are planted in the data: one whose recent events are all in category A, and one
whose many A-events are old while a few B-events are recent. The served model must put A-items
first for the first and B-items first for the second.

The generated events decay with known half-lives per category (0.5 to 2 days): the run's fit_decay task
must find each of them within 10%, and the explanations must show the fitted values.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import requests

from interest_decay import decay
from interest_decay.config import pg_conninfo
from interest_decay.events.synthetic import generate, half_lives, write_events
from tests.conftest import EVENT_TYPES, PROJECT_ROOT, recreate_database, stack_env

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

AS_OF = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
ITEMS_PER_CATEGORY = 50
CATEGORIES, MAX_HALF_LIFE = 4, 2.0  # the generator's categories "1".."4", half-lives 0.5 .. 2 days
CATEGORY_A, CATEGORY_B = "3", "4"
BIN = Path(sys.executable).parent


def items_of(category: str) -> list[str]:
    first = (int(category) - 1) * ITEMS_PER_CATEGORY + 1
    return [str(first + i) for i in range(5)]


def probe_events() -> pd.DataFrame:
    rows = []
    for i in range(12):  # probe_recent: 12 views of A-items in the last 3 days
        rows.append(("probe_recent", items_of(CATEGORY_A)[i % 5], CATEGORY_A, AS_OF - dt.timedelta(hours=3 + 6 * i)))
    for i in range(30):  # probe_shift: 30 old A-views (35-40 days back) ...
        rows.append(
            ("probe_shift", items_of(CATEGORY_A)[i % 5], CATEGORY_A, AS_OF - dt.timedelta(days=35, hours=4 * i))
        )
    for i in range(5):  # ... and 5 recent B-views
        rows.append(("probe_shift", items_of(CATEGORY_B)[i % 5], CATEGORY_B, AS_OF - dt.timedelta(hours=5 + 8 * i)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "ts"])
    frame.insert(3, "event_type", "view")
    frame["value"] = float("nan")
    return frame


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("stack")
    recreate_database("e2e_interest")
    recreate_database("e2e_airflow")
    env = stack_env(state, "e2e_interest", "e2e_airflow")
    events_dir = Path(env["EVENTS_DIR"])
    write_events(
        generate(
            200_000,
            n_users=2_000,
            n_categories=CATEGORIES,
            items_per_category=ITEMS_PER_CATEGORY,
            max_half_life=MAX_HALF_LIFE,
            end=AS_OF,
            seed=5,
        ),
        events_dir / "synthetic.parquet",
    )
    write_events(probe_events(), events_dir / "probes.csv")
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    conf = json.dumps({"as_of": f"{AS_OF:%Y-%m-%d}", "events_path": str(events_dir)})
    run = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "interest_pipeline", f"{AS_OF:%Y-%m-%d}", "-c", conf],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    log = run.stdout + run.stderr
    (state / "dag-test.log").write_text(log)
    assert run.returncode == 0 and "state=success" in log, log[-6000:]
    return env, state


@pytest.fixture(scope="module")
def served(stack):
    env, state = stack
    port = free_port()
    with (state / "serve.log").open("w") as log:
        # One worker, so that every call sees the same deploy state (each worker follows the champion alone).
        serve_env = {**env, "MODEL_RELOAD_SECONDS": "1", "PREDICTION_LOG_SECONDS": "1", "SERVE_WORKERS": "1"}
        process = subprocess.Popen(
            [str(BIN / "bentoml"), "serve", "interest_service:latest", "--host", "127.0.0.1", "--port", str(port)],
            env=serve_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, (state / "serve.log").read_text()[-4000:]
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        else:
            pytest.fail("bentoml serve did not become ready:\n" + (state / "serve.log").read_text()[-4000:])
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def recommend(url: str, **body) -> dict:
    import bentoml

    with bentoml.SyncHTTPClient(url) as client:
        result = client.recommend(**body)
    return result if isinstance(result, dict) else result.model_dump(mode="json")


def test_dag_run_leaves_reports_and_a_registered_model(stack):
    env, _ = stack
    reports = Path(env["REPORTS_DIR"]) / f"{AS_OF:%Y-%m-%d}"
    for name in (
        "metrics.json",
        "evaluation.md",
        "training_curve.png",
        "drift.html",
        "drift.json",
        "churn.png",
        "quality.html",
        "quality.json",
    ):
        assert (reports / name).stat().st_size > 0, name
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["train_examples"] > 1_000
    for method in ("model", "most_popular"):
        assert metrics["metrics"][method]["users"] > 50
        assert 0.0 <= metrics["metrics"][method]["ndcg@10"] <= 1.0
    promotion = metrics["promotion"]
    assert promotion["reason"].startswith("ndcg@10") and promotion["incumbent"] == "most_popular"
    assert promotion["champion"] == (metrics["model_tag"] if promotion["promoted"] else None)
    assert "Promotion gate against `most_popular`" in (reports / "evaluation.md").read_text()
    drift = json.loads((reports / "drift.json").read_text())["summary"]
    assert drift["current_rows"] > 0 and drift["reference_rows"] > 0
    # Evidently's recsys metrics on the same test lists agree with the project's own (same definitions)
    quality, model = metrics["quality"], metrics["metrics"]["model"]
    assert quality["users"] == model["users"] and quality["k"] == 10
    assert quality["ndcg"] == pytest.approx(model["ndcg@10"], rel=1e-9)
    assert quality["hit_rate"] == pytest.approx(model["hr@10"], rel=1e-9)
    assert 0.0 <= quality["personalization"] <= 1.0 and 0.0 < quality["coverage"] <= 1.0
    with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:
        row = conn.execute(
            "select users, ndcg from monitoring.quality_runs where as_of = %s and model = %s",
            (AS_OF.date(), metrics["model_tag"]),
        ).fetchone()
    assert row == (quality["users"], pytest.approx(quality["ndcg"], rel=1e-12))


def fitted_half_lives(env: dict) -> dict[tuple[str, str], float]:
    with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:
        return dict(
            ((c, t), h)
            for c, t, h in conn.execute(
                "select category_id, event_type, half_life_days from params.decay_parameters_fitted"
            )
        )


def test_the_run_fits_every_categorys_half_life_within_ten_percent_of_the_generators(stack):
    env, _ = stack
    fitted = fitted_half_lives(env)
    for category, truth in zip(map(str, range(1, CATEGORIES + 1)), half_lives(CATEGORIES, 0.5, MAX_HALF_LIFE)):
        assert fitted[(category, "*")] == pytest.approx(truth, rel=0.10), category
    report = (Path(env["REPORTS_DIR"]) / f"{AS_OF:%Y-%m-%d}" / "decay.md").read_text()
    assert "| category | event type | family | half-life (days) [95% CI] |" in report
    assert (Path(env["REPORTS_DIR"]) / f"{AS_OF:%Y-%m-%d}" / "decay_curves" / f"{CATEGORY_A}__view.png").stat().st_size
    assert "## Repeat-purchase family" in report
    with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:  # the repeat fit reached its mart
        (fitted_items,) = conn.execute(
            "select count(*) from params.repeat_parameters_fitted where origin = 'item'"
        ).fetchone()
        (scored,) = conn.execute(
            "select count(*) from analytics.user_item_repeat_interest where as_of = %s", (AS_OF,)
        ).fetchone()
    assert fitted_items > 0 and scored > 1_000


def test_drift_summaries_land_in_postgres_and_the_monitor_dag_runs(stack):
    env, state = stack
    run = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "drift_monitor"], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0 and "state=success" in run.stdout + run.stderr, (run.stdout + run.stderr)[-4000:]
    with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:
        rows = dict(
            conn.execute(
                "select check_name, current_rows from monitoring.drift_runs where as_of = %s", (AS_OF.date(),)
            ).fetchall()
        )
    assert set(rows) == {"pipeline", "monitor"} and min(rows.values()) > 0
    assert (Path(env["REPORTS_DIR"]) / "monitor" / f"{AS_OF:%Y-%m-%d}" / "drift.html").stat().st_size > 0


def test_recent_interest_in_a_category_puts_its_items_first(stack, served):
    answer = recommend(served, user_id="probe_recent", k=5)
    categories = [item["category_id"] for item in answer["items"]]
    assert answer["fallback"] is False
    # first, and no other category more often (four categories: popular ones fill the rest of the list)
    assert categories[0] == CATEGORY_A and categories.count(CATEGORY_A) == max(map(categories.count, categories)), (
        categories
    )
    explanation = answer["items"][0]["explanation"]
    assert f"category {CATEGORY_A}: interest" in explanation
    # the probe's events are all views of A: the explanation gives that kind's fitted half-life
    assert decay.describe_half_life(fitted_half_lives(stack[0])[(CATEGORY_A, "view")]) in explanation


def test_old_interest_fades_behind_recent_interest(served):
    answer = recommend(served, user_id="probe_shift", k=5)
    categories = [item["category_id"] for item in answer["items"]]
    assert categories[0] == CATEGORY_B and categories.count(CATEGORY_B) == max(map(categories.count, categories)), (
        categories
    )


def test_requests_skip_the_tracing_middleware_unless_traces_are_wanted(served):
    """SERVE_TRACING_SAMPLE_RATE is unset: BentoML's OpenTelemetry middleware (which sets the request-id
    header) is skipped for every path (serving.middleware.tracing_config)."""
    response = requests.post(f"{served}/recommend", json={"user_id": "probe_recent", "k": 3}, timeout=10)
    assert response.status_code == 200 and len(response.json()["items"]) == 3
    assert "x-bentoml-request-id" not in {name.lower() for name in response.headers}


def test_unknown_user_gets_the_popularity_fallback(served):
    answer = recommend(served, user_id="nobody-we-know", k=3)
    assert answer["fallback"] is True
    assert len(answer["items"]) == 3
    assert answer["items"][0]["explanation"].startswith("popular")


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "", "k": 5},
        {"user_id": "u1", "k": 0},
        {"user_id": "u1", "k": 5000},
        {"k": 5},
        {"user_id": "u1", "k": "many"},
    ],
)
def test_invalid_requests_get_400_with_a_message(served, body):
    response = requests.post(f"{served}/recommend", json=body, timeout=10)
    assert response.status_code == 400
    assert "validation error" in response.json()["error"]
    assert "Traceback" not in response.text


def call(url: str, endpoint: str, **body) -> dict:
    import bentoml

    with bentoml.SyncHTTPClient(url) as client:
        result = getattr(client, endpoint)(**body)
    return result if isinstance(result, dict) else result.model_dump(mode="json")


COPY_MODEL = """
import shutil, sys
from pathlib import Path
import bentoml
from models import registry
source = bentoml.models.get(registry.champion())
with bentoml.models.create(source.tag.name, labels=source.info.labels, metadata=source.info.metadata) as copy:
    shutil.copytree(source.path, copy.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("model.yaml"))
    if sys.argv[1] == "broken":
        (Path(copy.path) / "model.pt").write_bytes(b"not a checkpoint")
print(copy.tag)
"""


def in_stack(env, code: str, *args: str) -> str:
    run = subprocess.run(
        [str(BIN / "python"), "-c", code, *args], env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""


def wait_for(url: str, condition, what: str, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        state = call(url, "deployment")
        if condition(state):
            return state
        assert time.monotonic() < deadline, f"{what}: {state}"
        time.sleep(0.5)


def test_a_new_champion_serves_without_downtime_and_a_broken_one_never_does(stack, served):
    """Promote a new model while requests run: the server switches to it with no failed request. Promote a
    model that cannot load: the server keeps the current one and says why. Roll both back."""
    import threading

    env, _ = stack
    original = call(served, "deployment")
    assert original["model"] == original["champion"] and original["last_error"] is None
    answers, errors, stop = [], [], threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                answers.append(recommend(served, user_id="probe_recent", k=3)["model"])
            except Exception as error:  # noqa: BLE001 (every failure is a finding)
                errors.append(repr(error))

    client = threading.Thread(target=load)
    client.start()
    try:
        fresh = in_stack(env, COPY_MODEL, "fresh")
        in_stack(env, "import sys; from models.registry import promote; promote(sys.argv[1], 'e2e deploy')", fresh)
        wait_for(served, lambda s: s["model"] == fresh, "the new champion was not deployed")
        broken = in_stack(env, COPY_MODEL, "broken")
        in_stack(env, "import sys; from models.registry import promote; promote(sys.argv[1], 'e2e broken')", broken)
        state = wait_for(served, lambda s: s["last_error"] is not None, "the broken champion was not reported")
        assert state["model"] == fresh and state["champion"] == broken and broken in state["last_error"]
        time.sleep(1)
    finally:
        stop.set()
        client.join(timeout=60)
        for _ in range(2):  # back to the original champion for the tests that follow
            in_stack(env, "from models.registry import rollback; rollback()")
    wait_for(served, lambda s: s["model"] == original["model"] and s["last_error"] is None, "rollback not deployed")
    assert errors == [] and len(answers) > 20
    assert answers[0] == original["model"] and answers[-1] == fresh and broken not in answers


def test_what_the_server_answered_reaches_postgres_for_prediction_drift(stack, served):
    """The serving process logs each answer (model, scores, fallback) to monitoring.served_predictions."""
    env, _ = stack
    before = recommend(served, user_id="nobody-we-know", k=2)
    assert before["fallback"] is True
    deadline, rows = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:
            if conn.execute("select to_regclass('monitoring.served_predictions')").fetchone()[0]:
                rows = conn.execute(
                    "select model, fallback, top_score, item_count from monitoring.served_predictions "
                    "where endpoint = 'recommend' order by served_at"
                ).fetchall()
        if rows and rows[-1][1] is True:
            break
        time.sleep(1)
    assert len(rows) > 20 and len({model for model, *_ in rows}) >= 2  # the deploy test switched models
    assert rows[-1][1:] == (True, None, 2)  # the fallback just served: no model score, two items
    assert all(score is not None for _, fallback, score, _ in rows if not fallback)


def test_churn_risk_is_a_probability_per_user(stack, served):
    env, _ = stack
    report = json.loads((Path(env["REPORTS_DIR"]) / f"{AS_OF:%Y-%m-%d}" / "churn.json").read_text())
    assert {"model", "baseline"} <= set(report["metrics"]) and report["test_users"] > 50
    answer = call(served, "churn_risk", user_ids=["u1", "u2", "nobody-we-know"])
    probabilities = [user["probability"] for user in answer["users"]]
    assert [user["user_id"] for user in answer["users"]] == ["u1", "u2", "nobody-we-know"]
    assert all(0.0 < p < 1.0 for p in probabilities[:2]) and probabilities[2] is None
    assert answer["horizon_days"] == 14 and answer["users"][2]["known_user"] is False


def test_interest_profile_is_decayed_to_now_with_half_lives(stack, served):
    profile = call(served, "interest", user_id="probe_recent")
    assert profile["known_user"] is True
    top = profile["categories"][0]
    fitted = fitted_half_lives(stack[0])[(CATEGORY_A, "view")]  # the run's fit, not the 7-day default
    assert top["category_id"] == CATEGORY_A and top["half_life_days"] == {"view": pytest.approx(fitted, rel=1e-12)}
    assert fitted != 7.0
    assert sum(c["share"] for c in profile["categories"]) == pytest.approx(1.0)
    # stored as of AS_OF, decayed to the request time with the fitted half-life
    stored_days = dt.datetime.fromisoformat(profile["as_of"]) - dt.datetime.fromisoformat(profile["scores_as_of"])
    assert stored_days.total_seconds() > 0
    assert call(served, "interest", user_id="nobody-we-know")["known_user"] is False


def test_audience_lists_pseudonyms_of_interested_users(stack, served):
    from interest_decay.events.pseudonym import pseudonymise

    audience = call(served, "audience", category_id=CATEGORY_A, min_interest=0.0, limit=10_000)
    users = [member["user_id"] for member in audience["users"]]
    assert pseudonymise("probe_recent") in users and "probe_recent" not in users
    interests = [member["interest"] for member in audience["users"]]
    assert interests == sorted(interests, reverse=True)
    # Each user's interest is the mart's interest at the latest stored day, each event type's part decayed
    # from that day to the request time with its half-life (the category's kinds are all exponential).
    env, _ = stack
    computed_from = dt.datetime.fromisoformat(audience["computed_from"])
    age_days = (dt.datetime.fromisoformat(audience["as_of"]) - computed_from).total_seconds() / 86400
    with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:
        kinds = dict(
            conn.execute(
                "select event_type, half_life_days from analytics.int_event_kind_parameters "
                "where category_id = %s and family = 'exponential'",
                (CATEGORY_A,),
            ).fetchall()
        )
        parts = [f"coalesce(interest_{t}, 0) * power(0.5, %(age)s / {h})" for t, h in kinds.items()]
        want = dict(
            conn.execute(
                f"select user_id, {' + '.join(parts)} from analytics.user_category_interest "
                "where category_id = %(category)s and as_of = %(as_of)s",
                {"age": age_days, "category": CATEGORY_A, "as_of": computed_from},
            ).fetchall()
        )
        assert (
            len(kinds)
            == conn.execute(
                "select count(*) from analytics.int_event_kind_parameters where category_id = %s", (CATEGORY_A,)
            ).fetchone()[0]
        )
    assert len(users) == len(want) > 0
    for member in audience["users"]:
        assert member["interest"] == pytest.approx(want[member["user_id"]], rel=1e-9)
    assert call(served, "audience", category_id="no-such-category")["users"] == []


def test_live_events_are_stored_and_change_recommendations_at_once(served):
    now = dt.datetime.now(dt.UTC)
    live = [
        {
            "user_id": "probe_live",
            "item_id": items_of(CATEGORY_B)[i],
            "category_id": CATEGORY_B,
            "event_type": "purchase",
            "ts": (now - dt.timedelta(minutes=10 * i)).isoformat(),
        }
        for i in range(3)
    ]
    bad = [
        {
            "user_id": "probe_live",
            "item_id": "1",
            "category_id": CATEGORY_A,
            "event_type": "teleport",
            "ts": now.isoformat(),
        },
        {
            "user_id": "probe_live",
            "item_id": "1",
            "category_id": CATEGORY_A,
            "event_type": "view",
            "ts": "2999-01-01T00:00:00Z",
        },
    ]
    assert call(served, "recommend", user_id="probe_live", k=3)["fallback"] is True
    result = call(served, "events", events=live + bad)
    assert (result["accepted"], result["rejected"], result["users_updated"]) == (3, 2, 1)
    assert [e["reason"] for e in result["events"][3:]] == [
        'unknown event_type "teleport"',
        "timestamp in the future (after load time + 1 day)",
    ]
    answer = call(served, "recommend", user_id="probe_live", k=3)
    assert answer["fallback"] is False and answer["items"][0]["category_id"] == CATEGORY_B
    assert call(served, "interest", user_id="probe_live")["categories"][0]["category_id"] == CATEGORY_B
    again = call(served, "events", events=live + bad)
    assert again["duplicate_batch"] is True and again["load_id"] == result["load_id"] and again["users_updated"] == 0
    with psycopg.connect(pg_conninfo("e2e_interest")) as conn:
        stored = conn.execute("select count(*) from raw.events where load_id = %s", (result["load_id"],)).fetchone()[0]
    assert stored == 5  # accepted and rejected rows alike, for staging to count


def test_recommend_filters_by_category_and_past_purchases(served):
    from interest_decay.events.pseudonym import pseudonymise

    answer = call(served, "recommend", user_id="probe_recent", k=20, category_id=CATEGORY_B)
    assert len(answer["items"]) == 20 and {item["category_id"] for item in answer["items"]} == {CATEGORY_B}
    with psycopg.connect(pg_conninfo("e2e_interest")) as conn:
        user, bought = next(
            (u, {i for (i,) in rows})
            for u in (f"u{n}" for n in range(400))
            if (
                rows := conn.execute(
                    "select distinct item_id from analytics.stg_behaviour__events "
                    "where user_id = %s and event_type = 'purchase'",
                    (pseudonymise(u),),
                ).fetchall()
            )
        )
    everything = {item["item_id"] for item in call(served, "recommend", user_id=user, k=1000)["items"]}
    kept = {
        item["item_id"] for item in call(served, "recommend", user_id=user, k=1000, exclude_purchased=True)["items"]
    }
    assert bought & everything and not bought & kept and kept == everything - bought


@pytest.mark.parametrize(
    "endpoint, body",
    [
        ("recommend", {"user_id": "u1", "k": 5, "category_id": "no-such-category"}),
        ("events", {"events": []}),
        ("events", {"events": [{"user_id": "u1"}] * 10_001}),
        ("audience", {"category_id": "3", "limit": 0}),
        ("interest", {"user_id": ""}),
        ("churn_risk", {"user_ids": []}),
    ],
)
def test_other_invalid_requests_get_400_with_a_message(served, endpoint, body):
    response = requests.post(f"{served}/{endpoint}", json=body, timeout=30)
    assert response.status_code == 400, response.text
    payload = response.json()  # BentoML 1.4 wraps errors the service raises in a list: [{"error": ...}]
    assert (payload[0] if isinstance(payload, list) else payload)["error"] and "Traceback" not in response.text


def test_schemathesis_finds_no_server_error(served, tmp_path):
    """Property-based requests generated from the service's OpenAPI spec never get a 5xx. /events is left
    out here: its generated events would be stored and change the tables the REST-API test compares;
    its validation is covered by the tests above."""
    run = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{served}/docs.json",
            "--checks",
            "not_a_server_error",
            "--exclude-path",
            "/events",
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--workers",
            "1",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    tested = re.search(r"Tested:\s+(\d+)", run.stdout)
    assert "No issues found" in run.stdout and tested and int(tested.group(1)) >= 7, run.stdout[-3000:]


INTEREST_TABLES = {  # keys first, the float interest last
    "interest_snapshots": [
        "as_of",
        "user_id",
        "category_id",
        "recomputed",
        "event_count",
        "last_event_ts",
        " + ".join(f"coalesce(interest_{t}, 0)" for t in EVENT_TYPES),
    ],
    "user_category_interest": ["as_of", "user_id", "category_id", "event_count", "last_event_ts", "interest"],
    "user_interest_features": ["as_of", "user_id", "category_ids", "event_count", "total_interest"],
    "user_item_repeat_interest": [
        "as_of",
        "user_id",
        "item_id",
        "purchase_days",
        "last_purchase_ts",
        "repeat_interest",
    ],
}


def interest_tables(database: str) -> dict[str, list[tuple]]:
    """The interest tables, sorted by key; the last column is the float interest."""
    with psycopg.connect(pg_conninfo(database)) as conn:
        return {
            table: conn.execute(
                f"select {', '.join(columns)} from analytics.{table} order by "
                + ", ".join(str(i) for i in range(1, len(columns)))
            ).fetchall()
            for table, columns in INTEREST_TABLES.items()
        }


def assert_same_tables(got: dict, want: dict) -> None:
    """Same rows and keys; interest equal up to float rounding (a re-run may reach a day from the day
    before, S(t1) * 0.5^(dt / h), instead of summing every event again)."""
    for table in want:
        assert len(got[table]) == len(want[table]) > 0, table
        for new, old in zip(got[table], want[table]):
            assert new[:-1] == old[:-1], table
            assert new[-1] == pytest.approx(old[-1], rel=1e-12), table


@pytest.fixture(scope="module")
def airflow_ui(stack, served):
    """`airflow standalone` (UI, API, scheduler, LocalExecutor) over the same stack, started as `make airflow` does;
    its deploy task checks the running server."""
    env, _ = stack
    port = free_port()
    env = {
        **env,
        "AIRFLOW__API__PORT": str(port),
        "INTEREST_PIPELINE_SCHEDULE": "none",
        "SERVE_URL": served,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
    }
    services = str(PROJECT_ROOT / "infra" / "services.sh")
    started = subprocess.run([services, "airflow"], env=env, capture_output=True, text=True, timeout=400)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield env, f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
    finally:
        subprocess.run([services, "stop", "airflow"], env=env, capture_output=True, timeout=120)


def test_a_run_triggered_through_the_rest_api_succeeds_and_rebuilds_the_day_identically(stack, airflow_ui):
    env, url = airflow_ui
    before = interest_tables(env["PGDATABASE"])
    passwords = json.loads((Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated").read_text())
    token = requests.post(
        f"{url}/auth/token", json={"username": "admin", "password": passwords["admin"]}, timeout=30
    ).json()["access_token"]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    deadline = time.monotonic() + 180
    while api.get(f"{url}/api/v2/dags/interest_pipeline", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the DAG processor did not register interest_pipeline"
        time.sleep(3)
    assert api.patch(f"{url}/api/v2/dags/interest_pipeline", json={"is_paused": False}, timeout=30).ok
    # half_life_overrides equal to the default half-life: the same tables, but the Param must reach dbt
    conf = {
        "as_of": f"{AS_OF:%Y-%m-%d}",
        "events_path": env["EVENTS_DIR"],
        "half_life_days": 7,
        "retrain": "on_drift",
        "half_life_overrides": {"*:*": 7},
        "decay_family": "table",
    }
    created = api.post(
        f"{url}/api/v2/dags/interest_pipeline/dagRuns", json={"logical_date": None, "conf": conf}, timeout=30
    )
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]
    deadline = time.monotonic() + 900
    state = "queued"
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(5)
        state = api.get(f"{url}/api/v2/dags/interest_pipeline/dagRuns/{run_id}", timeout=30).json()["state"]
    assert state == "success", f"run {run_id} ended {state}; see {env['DECAY_STATE_DIR']}/logs/airflow.log"
    assert_same_tables(interest_tables(env["PGDATABASE"]), before)
    with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:
        assert conn.execute(
            "select category_id, event_type, half_life_days, origin from analytics.int_decay_parameters "
            "where origin = 'override'"
        ).fetchall() == [("*", "*", 7.0, "override")]
    # retrain = on_drift: training ran exactly when the drift check (same day, same tables) found drift
    with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:
        drifted = conn.execute(
            "select dataset_drift from monitoring.drift_runs where as_of = %s and check_name = 'pipeline'",
            (AS_OF.date(),),
        ).fetchone()[0]
    train_state = api.get(
        f"{url}/api/v2/dags/interest_pipeline/dagRuns/{run_id}/taskInstances/train", timeout=30
    ).json()["state"]
    assert train_state == ("success" if drifted else "skipped")
