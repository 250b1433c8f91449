"""Tests of the demo ERP world: reproducible, canonical, consistent with its truth, written as promised."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from include.canonical import HOLD_REASONS, INTERACTION_KINDS, TABLES, coerce
from include.demo_erp import sanctions
from include.demo_erp.__main__ import main
from include.demo_erp.generate import (
    ERP_TABLES,
    TRUTH_COLUMNS,
    TRUTH_TABLE,
    SimulationError,
    WorldSpec,
    WorldSpecError,
    _Clock,
    _EventBook,
    generate_world,
    write_demo_erp,
)

SMALL = WorldSpec(n_customers=250, days=240, seed=11)
# Columns that hold promises about the future rather than events, so they may lie after as_of.
FUTURE_DATED = {("orders", "requested_date"), ("invoices", "due_at")}


@pytest.fixture(scope="module")
def world():
    return generate_world(SMALL)


@pytest.fixture(scope="module")
def decided(world):
    """Orders that went through the ERP's checks, with their truth and whether they were held."""
    orders = world.tables["orders"]
    holds = world.tables["holds"]
    frame = orders[orders["status"] != "open"].merge(world.truth, on="order_id", validate="one_to_one")
    frame["held_any"] = frame["order_id"].isin(holds["order_id"])
    for reason in HOLD_REASONS:
        frame[f"held_{reason}"] = frame["order_id"].isin(holds.loc[holds["reason"] == reason, "order_id"])
    return frame


def _assert_worlds_equal(left, right):
    assert left.tables.keys() == right.tables.keys()
    for name in left.tables:
        pd.testing.assert_frame_equal(left.tables[name], right.tables[name], obj=name)
    for attribute in ("truth", "customer_truth", "future_holds", "rule_facts", "sdn"):
        pd.testing.assert_frame_equal(getattr(left, attribute), getattr(right, attribute), obj=attribute)


def test_same_seed_gives_the_same_world_and_another_seed_another():
    spec = WorldSpec(n_customers=60, days=90, seed=5)
    first = generate_world(spec)

    _assert_worlds_equal(first, generate_world(spec))
    other = generate_world(WorldSpec(n_customers=60, days=90, seed=6))
    assert not first.tables["orders"]["amount"].equals(other.tables["orders"]["amount"])


def test_every_table_is_canonical_with_unique_keys_and_required_values(world):
    assert set(world.tables) == set(TABLES)
    for name, frame in world.tables.items():
        spec = TABLES[name]
        assert list(frame.columns) == spec.column_names, name
        pd.testing.assert_frame_equal(coerce(name, frame), frame, obj=name)
        assert len(frame) > 0, name
        assert not frame.duplicated(list(spec.key)).any(), f"{name}: key {spec.key} not unique"
        assert not frame[spec.required_columns].isna().any().any(), f"{name}: missing required value"


def test_references_between_tables_resolve(world):
    t = world.tables
    customers = set(t["customers"]["customer_id"])
    for name in set(TABLES) - {"customers", "order_lines", "holds", "inventory", "sanctions_entries"}:
        assert set(t[name]["customer_id"]) <= customers, name
    orders = set(t["orders"]["order_id"])
    for name in ("order_lines", "invoices", "holds"):
        assert set(t[name]["order_id"]) <= orders, name
    invoices = set(t["invoices"]["invoice_id"])
    assert set(t["payments"]["invoice_id"]) <= invoices
    assert set(t["disputes"]["invoice_id"]) <= invoices
    assert set(t["order_lines"]["product_id"]) <= set(t["inventory"]["product_id"])
    assert re.fullmatch(r"C\d{6}", t["customers"]["customer_id"].iloc[0])
    assert re.fullmatch(r"P\d{4}", t["order_lines"]["product_id"].iloc[0])


def test_orders_amount_is_the_sum_of_their_lines(world):
    lines = world.tables["order_lines"]
    total = (lines["quantity"] * lines["unit_price"]).round(2).groupby(lines["order_id"]).sum().round(2)
    amount = world.tables["orders"].set_index("order_id")["amount"]
    np.testing.assert_allclose(amount.loc[total.index].to_numpy(), total.to_numpy(), atol=0.011)


def test_nothing_in_the_sources_is_dated_after_as_of(world):
    as_of = pd.Timestamp(SMALL.as_of)
    checked = 0
    for name, frame in world.tables.items():
        for column in TABLES[name].columns:
            if column.kind == "ts" and (name, column.name) not in FUTURE_DATED:
                latest = frame[column.name].max()
                assert pd.isna(latest) or latest < as_of, f"{name}.{column.name} has {latest}"
                checked += 1
    assert checked >= 13


def test_open_orders_are_recent_and_have_no_holds_or_invoices_but_a_truth(world):
    orders = world.tables["orders"]
    open_orders = orders[orders["status"] == "open"]
    recent = orders["created_at"] >= pd.Timestamp(SMALL.as_of) - timedelta(days=SMALL.open_days)

    assert len(open_orders) > 0
    assert (recent == (orders["status"] == "open")).all()
    assert not open_orders["order_id"].isin(world.tables["holds"]["order_id"]).any()
    assert not open_orders["order_id"].isin(world.tables["invoices"]["order_id"]).any()
    assert open_orders["order_id"].isin(world.truth["order_id"]).all()
    assert set(world.future_holds["order_id"]) <= set(open_orders["order_id"])


def test_hold_rate_is_in_range_credit_leads_and_compliance_is_rare(decided):
    rates = {reason: decided[f"held_{reason}"].mean() for reason in HOLD_REASONS}

    assert 0.15 <= decided["held_any"].mean() <= 0.25
    assert max(rates, key=rates.get) == "credit"
    assert min(rates, key=rates.get) == "compliance"
    assert decided.groupby("order_id").size().max() == 1
    assert (decided[[f"held_{r}" for r in HOLD_REASONS]].sum(axis=1) > 1).any(), "no order with several holds"


def test_truth_probabilities_are_proper_and_holds_follow_them(world, decided):
    assert list(world.truth.columns) == list(TRUTH_COLUMNS)
    p = world.truth[list(TRUTH_COLUMNS[1:])].to_numpy()
    assert ((p > 0) & (p < 1)).all()
    reasons = world.truth[[f"p_{r}" for r in HOLD_REASONS]].to_numpy()
    np.testing.assert_allclose(world.truth["p_any"], 1 - np.prod(1 - reasons, axis=1))

    for target in ("any", *HOLD_REASONS):
        prob, held = decided[f"p_{target}"].to_numpy(), decided[f"held_{target}"].to_numpy()
        # Holds are Bernoulli draws of the truth: the count of holds is within a few standard deviations.
        sd = np.sqrt((prob * (1 - prob)).sum())
        assert abs(held.sum() - prob.sum()) < 4 * sd, target


def test_holds_are_placed_after_creation_and_released_after_placement(world):
    orders = world.tables["orders"]
    holds = world.tables["holds"].merge(orders[["order_id", "created_at", "status"]], on="order_id")
    released = holds.dropna(subset=["released_at"])

    assert (holds["placed_at"] >= holds["created_at"]).all()
    assert (holds["placed_at"] <= holds["created_at"] + timedelta(days=3)).all()
    assert (released["released_at"] > released["placed_at"]).all()
    assert set(released["release_kind"]) == {"manual", "auto", "rejected"}
    assert (released.loc[released["release_kind"] == "auto", "released_by"] == "SYSTEM").all()
    cancelled = set(orders.loc[orders["status"] == "cancelled", "order_id"])
    assert cancelled == set(released.loc[released["release_kind"] == "rejected", "order_id"])


def test_invoices_follow_shipping_terms_and_payments(world):
    t = world.tables
    invoices = t["invoices"].merge(t["orders"][["order_id", "created_at", "status"]], on="order_id")
    terms = invoices.merge(t["customers"][["customer_id", "payment_terms_days"]], on="customer_id")
    ok = t["payments"][t["payments"]["status"] == "ok"]

    assert (invoices["status"] == "closed").all()
    assert (invoices["issued_at"] >= invoices["created_at"] + timedelta(days=1)).all()
    days = (terms["due_at"] - terms["issued_at"]).dt.total_seconds() / 86_400
    np.testing.assert_allclose(days, terms["payment_terms_days"].astype(float))
    assert set(ok["invoice_id"]) == set(invoices.loc[invoices["cleared_at"].notna(), "invoice_id"])
    assert {"failed", "declined"} <= set(t["payments"]["status"])
    assert set(t["interactions"]["kind"]) == set(INTERACTION_KINDS)


def test_rule_facts_are_what_the_erp_shows_before_each_order(world):
    """Exposure, overdue invoices and failed payments at creation, rebuilt from the ERP tables alone."""
    t = world.tables
    orders = t["orders"][["order_id", "customer_id", "created_at", "amount", "status"]]
    rejected = t["holds"][t["holds"]["release_kind"] == "rejected"].groupby("order_id")["released_at"].min()
    cancelled = orders[orders["status"] == "cancelled"].assign(at=lambda f: f["order_id"].map(rejected))
    invoices = t["invoices"]
    failed = t["payments"][t["payments"]["status"] != "ok"]

    def before(events: pd.DataFrame, start: str, end: str | None, weight: str | None) -> pd.Series:
        """Per order, the weight of the customer's events with start < created_at <= end."""
        pairs = orders[["order_id", "customer_id", "created_at"]].merge(events, on="customer_id")
        active = pairs[start] < pairs["created_at"]
        if end is not None:
            active &= pairs[end].isna() | (pairs[end] >= pairs["created_at"])
        weights = pairs[weight] if weight else pd.Series(1.0, index=pairs.index)
        totals = weights[active].groupby(pairs.loc[active, "order_id"]).sum()
        return totals.reindex(orders["order_id"], fill_value=0)

    created = before(orders.rename(columns={"created_at": "t"}).drop(columns="order_id"), "t", None, "amount")
    paid = before(invoices[["customer_id", "cleared_at", "amount"]], "cleared_at", None, "amount")
    gone = before(cancelled[["customer_id", "at", "amount"]], "at", None, "amount")
    late = invoices[invoices["cleared_at"].isna() | (invoices["cleared_at"] > invoices["due_at"])]
    overdue = before(late[["customer_id", "due_at", "cleared_at"]], "due_at", "cleared_at", None)
    late_30 = late.assign(due_30=late["due_at"] + timedelta(days=30))
    late_30 = late_30[late_30["cleared_at"].isna() | (late_30["cleared_at"] > late_30["due_30"])]
    overdue_30 = before(late_30[["customer_id", "due_30", "cleared_at"]], "due_30", "cleared_at", None)
    recent = failed.assign(until=failed["received_at"] + timedelta(days=90))
    failures = before(recent[["customer_id", "received_at", "until"]], "received_at", "until", None)

    facts = world.rule_facts.set_index("order_id").loc[orders["order_id"]]
    exposure = created - paid - gone + orders.set_index("order_id")["amount"]
    np.testing.assert_allclose(facts["exposure"], exposure, rtol=1e-9, atol=1e-6)
    np.testing.assert_array_equal(facts["overdue_invoices"], overdue)
    np.testing.assert_array_equal(facts["overdue_30_invoices"], overdue_30)
    np.testing.assert_array_equal(facts["failed_payments_90d"], failures)
    assert facts["overdue_30_invoices"].gt(0).any() and facts["failed_payments_90d"].gt(0).any()


def test_customers_include_near_misses_and_exact_matches_of_listed_names(world):
    truth = world.customer_truth.merge(world.tables["customers"][["customer_id", "name"]], on="customer_id")
    listed = world.sdn.set_index("ent_num")["SDN_Name"]
    near = truth[truth["sanctions_kind"] == "near_miss"]
    exact = truth[truth["sanctions_kind"] == "exact"]
    ordinary = truth[truth["sanctions_kind"] == "none"]

    assert len(near) >= 2 and len(exact) >= 1
    assert (exact["name"] == listed.loc[exact["sdn_ent_num"]].to_numpy()).all()
    assert (near["name"].str.upper() != listed.loc[near["sdn_ent_num"]].str.upper().to_numpy()).all()
    assert (near["screening_score"] >= 80).all()
    assert (ordinary["screening_score"] < 85).all()
    assert (truth["sanctions_true_match"] == (truth["sanctions_kind"] == "exact")).all()


def test_near_miss_and_exact_shares_match_the_intended_rates():
    truth = generate_world(WorldSpec(n_customers=2000, days=60, seed=2)).customer_truth
    shares = truth["sanctions_kind"].value_counts(normalize=True)

    assert shares["near_miss"] == pytest.approx(0.01, abs=0.002)
    assert shares["exact"] == pytest.approx(0.002, abs=0.001)


@pytest.fixture(scope="module")
def written(world, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_erp")
    url = f"sqlite:///{root / 'erp.db'}"
    counts = write_demo_erp(world, url, root / "drops")
    return url, root / "drops", counts


def test_erp_tables_round_trip_through_the_database_with_key_indexes(world, written):
    url, _, counts = written
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        assert set(ERP_TABLES) | {TRUTH_TABLE} <= set(inspector.get_table_names())
        with engine.connect() as conn:
            for name in ERP_TABLES:
                back = coerce(name, pd.read_sql_table(name, conn))
                pd.testing.assert_frame_equal(back, world.tables[name], obj=name)
                assert counts[name] == len(world.tables[name])
                unique = [i["column_names"] for i in inspector.get_indexes(name) if i["unique"]]
                assert list(TABLES[name].key) in unique, name
            truth = pd.read_sql_table(TRUTH_TABLE, conn)
        assert list(truth.columns) == list(TRUTH_COLUMNS)
        assert len(truth) == len(world.tables["orders"])
    finally:
        engine.dispose()


def test_writing_again_replaces_the_tables(world, written, tmp_path):
    url, _, counts = written
    again = write_demo_erp(world, url, tmp_path / "drops")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar_one()
    finally:
        engine.dispose()
    assert again == counts
    assert rows == len(world.tables["orders"])


@pytest.mark.parametrize(("table", "relative"), [("bureau_reports", "bureau"), ("interactions", "crm")])
def test_csv_extracts_have_canonical_columns_and_iso_utc_times(world, written, table, relative):
    _, drops, _ = written
    path = next((drops / relative).glob("*.csv"))
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    time_column = TABLES[table].time_column

    assert list(raw.columns) == TABLES[table].column_names
    assert raw[time_column].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    pd.testing.assert_frame_equal(coerce(table, raw), world.tables[table], obj=table)


def test_sdn_extract_has_the_published_layout(world, written):
    _, drops, counts = written
    path = drops / "sanctions" / "sdn.csv"
    data = path.read_bytes()
    text = data.decode("ascii")

    assert data.endswith(b"\r\n\x1a")
    assert text.count("\n") == text.count("\r\n") == len(world.sdn) == counts["sanctions/sdn.csv"]
    rows = list(csv.reader(io.StringIO(text.rstrip("\x1a"), newline="")))
    assert all(len(row) == len(sanctions.SDN_COLUMNS) for row in rows)
    assert ",-0- ," in text and '"-0- "' not in text
    assert not text.startswith("ent_num")
    pd.testing.assert_frame_equal(sanctions.read_sdn(path), world.sdn)
    assert world.sdn["Program"].str.contains("] [", regex=False).any()


def test_sdn_sample_reads_and_writes_back_byte_for_byte(tmp_path):
    sample = sanctions.load_sample()
    copy = tmp_path / "sdn.csv"
    sanctions.write_sdn(sample, copy)

    assert copy.read_bytes() == sanctions.SAMPLE_PATH.read_bytes()
    assert len(sample) == 300
    assert sample["Remarks"].str.contains("a.k.a.", regex=False).any()
    entries = generate_world(SMALL).tables["sanctions_entries"]
    assert sorted(entries["entry_id"], key=int) == sample["ent_num"].str.strip().tolist()
    assert entries["aliases"].notna().any()


def test_sdn_reader_names_the_line_of_a_broken_entry(tmp_path):
    path = tmp_path / "sdn.csv"
    path.write_bytes(b'36,"AEROCARIBBEAN AIRLINES",-0- ,"CUBA"\r\n\x1a')

    with pytest.raises(sanctions.SdnFormatError, match=r"sdn\.csv line 1: 4 fields, expected 12"):
        sanctions.read_sdn(path)


def test_simulation_refuses_a_consequence_filed_into_a_day_already_simulated():
    book = _EventBook(_Clock(pd.Timestamp(SMALL.as_of), days=10))
    book.take(3)
    one = np.ones(1, dtype=np.int64)

    book.add(one, one * 4 * 86_400, one, np.ones(1))
    with pytest.raises(SimulationError, match="day 3 arrived after day 3"):
        book.add(one, one * 3 * 86_400 + 60, one, np.ones(1))


def test_spec_rejects_what_cannot_make_a_world_and_sizes_by_orders():
    with pytest.raises(WorldSpecError, match="timezone-aware"):
        WorldSpec(as_of=datetime(2025, 6, 30))
    with pytest.raises(WorldSpecError, match="days=30"):
        WorldSpec(days=30)

    spec = WorldSpec.for_orders(3000, days=120, seed=4)
    orders = generate_world(spec).tables["orders"]
    assert len(orders) == pytest.approx(3000, rel=0.15)


def test_command_line_generates_and_writes(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    drops = str(tmp_path / "drops")

    with caplog.at_level("INFO", logger="include.demo_erp"):
        exit_code = main(["--erp-url", url, "--drop-dir", drops, "--orders", "1500", "--as-of", "2024-12-31"])
    assert exit_code == 0

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            latest = pd.read_sql_query("SELECT MAX(created_at) AS latest FROM orders", conn)["latest"].iloc[0]
    finally:
        engine.dispose()
    assert pd.Timestamp(latest, tz=UTC) < pd.Timestamp("2024-12-31", tz=UTC)
    assert (tmp_path / "drops" / "sanctions" / "sdn.csv").exists()
    assert any("demo ERP ready" in message for message in caplog.messages)


def test_injected_faults_are_quarantined_and_nothing_else_is():
    """Every fault the demo world carries is caught by validation, and no clean row is set aside."""
    from include import validation
    from include.demo_erp.faults import inject_faults
    from include.demo_erp.generate import WorldSpec, generate_world

    clean = generate_world(WorldSpec.for_orders(2_000, seed=5))
    dirty, counts = inject_faults(clean, share=0.01, seed=5)
    quarantined = {}
    for table in ("interactions", "bureau_reports", "payments"):
        outcome = validation.validate(table, dirty.tables[table], source="demo", batch="b", tolerance=0.5)
        quarantined[table] = len(outcome.quarantine)
        assert len(outcome.good) + len(outcome.quarantine) == len(dirty.tables[table])
    assert quarantined == {
        "interactions": counts["interactions_unknown_kind"],
        "bureau_reports": counts["bureau_reports_duplicated"],
        "payments": counts["payments_without_customer"],
    }
    assert min(counts.values()) > 0
