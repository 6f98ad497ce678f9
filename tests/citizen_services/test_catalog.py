"""The fee catalog for all 27 governorates (L2): its numbers, its overrides, its errors (file, line,
field), the senders that settle it, and a change of one governorate's fees taking effect."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulators.citizen_services.app import create_app
from simulators.common.catalog import CatalogError, load_catalog
from simulators.common.config import CONFIG_DIR, load_settings
from simulators.common.contracts import validate
from simulators.common.egypt import GOVERNORATES, iban_valid

POOLS = ["BLD", "UTL", "LIC", "RENT", "CEM", "FINE", "DEV", "VAT", "STAMP"]


def _total(client: Any, governorate: str, service: str, **units: int) -> str:
    body: dict[str, Any] = {"governorate_code": governorate, "service_code": service}
    if units:
        body["units"] = units
    response = client.post("/api/service-requests", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["total"]


# --- the shipped catalog ---------------------------------------------------------------------------

def test_every_governorate_of_facts_has_its_file_accounts_and_a_valid_iban():
    catalog = load_settings()["catalog"]
    assert sorted(catalog["governorates"]) == sorted(GOVERNORATES)
    files = sorted(p.name for p in (CONFIG_DIR / "catalog").glob("*.yaml"))
    assert [name[:2] for name in files] == sorted(GOVERNORATES)
    accounts_seen: set[str] = set()
    for code, gov in catalog["governorates"].items():
        assert (gov["name_en"], gov["name_ar"]) == GOVERNORATES[code]
        assert gov["example"] is True  # example values, marked as such
        assert iban_valid(gov["iban"])
        assert list(gov["settlement_accounts"]) == POOLS
        assert all(account.startswith(code) for account in gov["settlement_accounts"].values())
        assert not accounts_seen & set(gov["settlement_accounts"].values())
        accounts_seen |= set(gov["settlement_accounts"].values())
        assert len(gov["local_units"]) >= 2
    assert [s["code"] for s in catalog["services"]] == ["BPR", "TUC", "CUA", "OLR", "SLW", "CTC", "RNT", "CEM", "ASR"]


def test_cairo_alexandria_and_giza_keep_their_numbers(cs_client):
    assert _total(cs_client, "01", "BPR", area_m2=120) == "922.00"
    assert _total(cs_client, "21", "CTC") == "27.00"
    assert _total(cs_client, "02", "TUC") == "360.00"
    request = cs_client.post("/api/service-requests", json={"governorate_code": "02", "service_code": "TUC"}).get_json()
    assert [line["settlement_account"] for line in request["fee_lines"]] == ["0202001", "0209001"]
    cairo = cs_client.get("/api/governorates").get_json()["governorates"][0]
    assert (cairo["iban"], cairo["settlement_accounts"]["VAT"]) == ("EG470019000100000000010000001", "0108001")


def test_a_governorate_override_changes_its_assessment_only(cs_client):
    # Red Sea: 3.00 per m² instead of 2.50: 500 + 360 + VAT 14 % of 860 (120.40) + stamp 10 = 990.40.
    red_sea = cs_client.post("/api/service-requests", json={
        "governorate_code": "31", "service_code": "BPR", "units": {"area_m2": 120}}).get_json()
    validate("cs-service-request.schema.json", red_sea)
    assert [line["amount"] for line in red_sea["fee_lines"]] == ["500.00", "360.00", "120.40", "10.00"]
    assert red_sea["total"] == "990.40"
    area = red_sea["fee_lines"][1]
    assert (area["kind"], area["unit"], area["quantity"], area["rate"]) == ("per_unit", "area_m2", 120, "3.00")
    assert (area["settlement_account"], red_sea["fee_lines"][2]["settlement_account"]) == ("3101001", "3108001")
    assert red_sea["fee_lines"][2]["of"] == ["BASE", "AREA"]
    assert _total(cs_client, "29", "CEM") == "9020.00"  # Luxor's plot price
    assert _total(cs_client, "03", "TUC") == "310.00"   # Port Said's connection fee
    assert _total(cs_client, "04", "BPR", area_m2=120) == "922.00"  # Suez: the catalog's values
    listing = cs_client.get("/api/services?governorate_code=31").get_json()
    bpr = next(s for s in listing["services"] if s["code"] == "BPR")
    assert [(line["code"], line["overridden"]) for line in bpr["fee_lines"]] == [
        ("BASE", False), ("AREA", True), ("VAT", False), ("STAMP", False)]
    assert bpr["fee_lines"][1]["rate"] == "3.00" and bpr["fee_lines"][1]["settlement_account"] == "3101001"
    shared = next(s for s in cs_client.get("/api/services").get_json()["services"] if s["code"] == "BPR")
    assert shared["fee_lines"][1]["rate"] == "2.50"
    assert cs_client.get("/api/services?governorate_code=4").status_code == 400


def test_every_governorate_is_paid_by_card_through_its_own_sender():
    """card_gateway.senders and reference.efinance.senders cover every governorate's accounts."""
    settings = load_settings()
    gateway = {s["id"]: s for s in settings["card_gateway"]["senders"]}
    ours = settings["reference"]["efinance"]["senders"]
    for code, gov in settings["catalog"]["governorates"].items():
        sender = gateway.get(f"10{code}")
        assert sender is not None, f"no e-finance sender 10{code} for governorate {code}"
        assert sender["governorate_code"] == code
        assert set(gov["settlement_accounts"].values()) <= set(sender["settlement_accounts"]), code
        assert not set(sender["settlement_accounts"]) - set(gov["settlement_accounts"].values()), code
        reference_side = ours[code]
        assert reference_side["sender_id"] == sender["id"] and reference_side["password"] == sender["password"]
        assert reference_side["service_code"] in sender["service_codes"]


# --- errors name the file, the line and the field ------------------------------------------------------

@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    shutil.copy(CONFIG_DIR / "catalog.yaml", tmp_path / "catalog.yaml")
    shutil.copytree(CONFIG_DIR / "catalog", tmp_path / "catalog")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, fragment: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if fragment in line)


def _error(catalog_dir: Path) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        load_catalog(catalog_dir / "catalog.yaml")
    return info.value


@pytest.mark.parametrize(("old", "new", "field", "line_fragment", "words"), [
    ("BLD: '0401001'", "BLD: '04010'", "settlement_accounts.BLD", "BLD: '04010'", "does not match"),
    ("  STAMP: '0409001'\n", "", "settlement_accounts", "settlement_accounts:", "revenue pool STAMP"),
    ("iban: EG", "iban: EG1", "iban", "iban:", "does not match"),
    ("iban: EG150003000100000000040000001", "iban: EG160003000100000000040000001", "iban", "iban:", "check digits"),
    ("example: true\n", "example: true\nexample: false\n", "example", "example: false", "written twice"),
    ("name_en: Suez\n", "name_en: Suez\nnmae_ar: x\n", "nmae_ar", "nmae_ar", "not allowed"),
    ("  - {code: SUZ-GANAYEN", "  - {code: SUZ-ARBAEEN", "local_units.1.code", "name_en: Ganayen", "listed twice"),
    ("code: '04'", "code: [04", None, None, "not valid YAML"),
    ("STAMP: '0409001'\n", "STAMP: '0409001'\nfee_overrides:\n  BPR:\n    SIZE: {rate: '1.00'}\n",
     "fee_overrides.BPR.SIZE", "SIZE:", "no fee line 'SIZE'"),
    ("STAMP: '0409001'\n", "STAMP: '0409001'\nfee_overrides:\n  BPR:\n    AREA: {amount: '1.00'}\n",
     "fee_overrides.BPR.AREA.amount", "AREA:", "override its rate"),
    ("STAMP: '0409001'\n", "STAMP: '0409001'\nfee_overrides:\n  XYZ:\n    BASE: {amount: '1.00'}\n",
     "fee_overrides.XYZ", "XYZ:", "unknown service"),
    ("BLD: '0401001'", "BLD: '0101001'", "settlement_accounts.BLD", "BLD: '0101001'", "governorate 01's"),
])
def test_a_wrong_governorate_file_is_named_with_its_line_and_field(catalog_copy, old, new, field, line_fragment,
                                                                   words):
    suez = catalog_copy / "catalog" / "04-suez.yaml"
    _edit(suez, old, new)
    error = _error(catalog_copy)
    assert error.file == str(suez)
    assert error.field == field
    if line_fragment is not None:
        assert error.line == _line_of(suez, line_fragment)
        assert str(error).startswith(f"{suez}:{error.line}: {field}: ")
    else:
        assert error.line is not None
    assert words in str(error)


@pytest.mark.parametrize(("old", "new", "field", "line_fragment", "words"), [
    ("    revenue_pool: BLD\n    amount: '500.00'", "    revenue_pool: BLDG\n    amount: '500.00'",
     "services.0.fee_lines.0.revenue_pool", "revenue_pool: BLDG", "unknown revenue pool"),
    ("    - BASE\n    - AREA\n", "    - BASE\n    - PLOT\n", "services.0.fee_lines.2.of.1", "- PLOT", "unknown line"),
    ("services:\n", "servcies:\n", "servcies", "servcies:", "not allowed"),
    ("    amount: '25.00'", "    amount: '25.0'", "services.5.fee_lines.0.amount", "amount: '25.0'", "does not match"),
    ("governorate_files: catalog/*.yaml", "governorate_files: catalogue/*.yaml", "governorate_files",
     "governorate_files:", "no file matches"),
])
def test_a_wrong_shared_catalog_is_named_with_its_line_and_field(catalog_copy, old, new, field, line_fragment, words):
    shared = catalog_copy / "catalog.yaml"
    _edit(shared, old, new)
    error = _error(catalog_copy)
    assert (error.file, error.field) == (str(shared), field)
    assert error.line == _line_of(shared, line_fragment)
    assert words in str(error)


def test_a_governorate_file_must_be_named_after_its_code_and_be_unique(catalog_copy):
    (catalog_copy / "catalog" / "04-suez.yaml").rename(catalog_copy / "05-suez.yaml")
    shutil.move(catalog_copy / "05-suez.yaml", catalog_copy / "catalog" / "05-suez.yaml")
    error = _error(catalog_copy)
    assert (Path(error.file).name, error.field, error.line) == ("05-suez.yaml", "code", 4)
    (catalog_copy / "catalog" / "05-suez.yaml").rename(catalog_copy / "catalog" / "04-suez.yaml")
    shutil.copy(catalog_copy / "catalog" / "04-suez.yaml", catalog_copy / "catalog" / "04-suez-again.yaml")
    error = _error(catalog_copy)
    assert Path(error.file).name == "04-suez.yaml" and "already defined in" in error.message
    assert "04-suez-again.yaml" in error.message


def test_load_settings_reports_the_catalog_file_and_line(catalog_copy):
    suez = catalog_copy / "catalog" / "04-suez.yaml"
    _edit(suez, "UTL: '0402001'", "UTL: 402001")
    with pytest.raises(CatalogError) as info:
        load_settings(overrides={"catalog_file": str(catalog_copy / "catalog.yaml")})
    assert str(info.value).startswith(f"{suez}:{_line_of(suez, 'UTL:')}: settlement_accounts.UTL: ")


# --- a change of one governorate's fees is used by the next assessment ------------------------------

def test_a_fee_changed_in_yaml_is_used_after_a_reload_and_after_a_restart(catalog_copy, live_cs):
    settings = load_settings(overrides={"catalog_file": str(catalog_copy / "catalog.yaml")})
    live = live_cs(settings)
    body = {"governorate_code": "04", "service_code": "BPR", "units": {"area_m2": 100}}
    before = live.post("/api/service-requests", body).json()
    assert before["total"] == "865.00"  # 500 + 250 + VAT 105 + stamp 10
    suez = catalog_copy / "catalog" / "04-suez.yaml"
    suez.write_text(suez.read_text(encoding="utf-8")
                    + "fee_overrides:\n  BPR:\n    AREA: {rate: '4.00'}\n    STAMP: {amount: '15.00'}\n",
                    encoding="utf-8")
    # Not yet: the running system reads its catalog when it starts or when told to reload.
    assert live.post("/api/service-requests", body).json()["total"] == "865.00"
    reloaded = live.post("/_admin/catalog/reload")
    assert reloaded.status_code == 200
    assert reloaded.json()["reloads"] == 1 and reloaded.json()["catalog_file"] == str(catalog_copy / "catalog.yaml")
    after = live.post("/api/service-requests", body).json()
    assert [line["amount"] for line in after["fee_lines"]] == ["500.00", "400.00", "126.00", "15.00"]
    assert after["total"] == "1041.00"
    assert live.post("/api/service-requests", dict(body, governorate_code="01")).json()["total"] == "865.00"
    # A request assessed before keeps its fee lines.
    assert live.get(f"/api/service-requests/{before['request_number']}").json()["total"] == "865.00"
    # A broken edit is refused with file, line and field, and the catalog in use stays.
    _edit(suez, "STAMP: {amount: '15.00'}", "STAMP: {rate: '15.00'}")
    broken = live.post("/_admin/catalog/reload")
    assert broken.status_code == 422
    error = broken.json()["error"]
    assert error["code"] == "CATALOG_INVALID" and error["field"] == "fee_overrides.BPR.STAMP.rate"
    assert error["message"].startswith(f"{suez}:{_line_of(suez, 'STAMP: {rate')}: fee_overrides.BPR.STAMP.rate: ")
    assert live.post("/api/service-requests", body).json()["total"] == "1041.00"
    # A restart reads the files as they are now.
    _edit(suez, "STAMP: {rate: '15.00'}", "STAMP: {amount: '20.00'}")
    restarted = create_app(load_settings(overrides={"catalog_file": str(catalog_copy / "catalog.yaml")}))
    try:
        assert _total(restarted.test_client(), "04", "BPR", area_m2=100) == "1046.00"
    finally:
        restarted.extensions["tahseel"].stop()


def test_the_admin_catalog_view(cs_client):
    state = cs_client.get("/_admin/catalog").get_json()
    assert state["governorates"] == sorted(GOVERNORATES) and len(state["services"]) == 9
    assert state["catalog_file"].endswith("config/catalog.yaml") and state["reloads"] == 0


def test_governorates_may_be_written_inline_in_the_shared_file(tmp_path):
    luxor = yaml.safe_load((CONFIG_DIR / "catalog" / "29-luxor.yaml").read_text(encoding="utf-8"))
    del luxor["code"]
    inline = yaml.safe_dump({"governorates": {"29": luxor}}, allow_unicode=True, sort_keys=False)
    shared = re.sub(r"^governorate_files:.*\n", lambda _: inline,
                    (CONFIG_DIR / "catalog.yaml").read_text(encoding="utf-8"), flags=re.M)
    (tmp_path / "catalog.yaml").write_text(shared, encoding="utf-8")
    catalog = load_catalog(tmp_path / "catalog.yaml")
    assert list(catalog["governorates"]) == ["29"]
    assert catalog["governorates"]["29"]["fee_overrides"] == {"CEM": {"BASE": {"amount": "9000.00"}}}
    broken = shared.replace("  '29':\n", "  '29':\n    code: '28'\n", 1)
    (tmp_path / "catalog.yaml").write_text(broken, encoding="utf-8")
    error = _error(tmp_path)
    assert (error.file, error.field) == (str(tmp_path / "catalog.yaml"), "governorates.29.code")
    assert error.line == _line_of(tmp_path / "catalog.yaml", "code: '28'")
