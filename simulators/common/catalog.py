"""The fee catalog (obligation L2) from its YAML files, checked, with errors that name FILE:LINE: FIELD.

The catalog is settings every party reads (citizen services assesses with it; Khales, settlement,
the card gateway's pages and the reference service's reports read the governorates' names,
local units, IBANs and accounts), so it is loaded here, with the settings. Layout
(``config/catalog.yaml``'s header says the same):

- the shared file: ``currency``, ``revenue_pools`` (each with its budget chapter and item),
  ``services`` (fee lines), and ``governorate_files``, a glob relative to the shared file's folder
  (``catalog/*.yaml``); governorates may also be written inline under ``governorates``;
- one file per governorate, ``<code>-<name>.yaml``: ``code``, names, ``iban``, ``local_units``,
  ``settlement_accounts`` (pool → account) and ``fee_overrides`` (service → line → new value).

The result is one dict, ``{currency, revenue_pools, services, governorates: {code: {...}}}``,
validated by ``contracts/cs-catalog.schema.json`` per file, then by :func:`catalog_problems`
(cross-references: pools, lines, accounts, overrides) with each problem mapped back to its file and
line. Files are re-read when their content changes (the cache is keyed on the bytes), so a reload
or a restart sees an edit at once.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import yaml
from jsonschema.exceptions import best_match

from .contracts import error_path, validator
from .egypt import GOVERNORATES, iban_valid
from .yamlfile import YamlFileError, line_of, parse_yaml_text

SHARED_SCHEMA = "cs-catalog.schema.json"
GOVERNORATE_SCHEMA = "cs-catalog-governorate.schema.json"
OVERRIDE_FIELD_FOR_KIND = {"fixed": "amount", "per_unit": "rate", "percentage": "rate_basis_points"}


class CatalogError(YamlFileError):
    """Raised when the catalog cannot be read or is inconsistent: ``file:line: field: message``
    (a catalog given as a dict, not read from files, has no file and line)."""


Problem = tuple[list[Any], str]  # (path in the merged catalog, message)


# --- loading ----------------------------------------------------------------------------------------
# Parsed and schema-checked files, keyed on (path, schema, sha256 of the bytes): an unchanged file is
# neither parsed nor validated again, an edited one always is (whatever its modification time says).
_cache: dict[tuple[str, str, str], tuple[Any, yaml.Node | None]] = {}
_checked_catalogs: set[str] = set()  # sha256 of merged catalogs (JSON) already found consistent
_cache_lock = threading.Lock()
MAX_CACHED = 512


def _load_file(path: Path, schema: str, what: str) -> tuple[Any, yaml.Node | None]:
    """``(data, node)`` of one catalog file that parses and meets ``schema``; :class:`CatalogError` otherwise."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot read: {exc}", file=file) from None
    key = (file, schema, hashlib.sha256(raw).hexdigest())
    with _cache_lock:
        hit = _cache.get(key)
    if hit is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CatalogError("the file is not UTF-8", file=file) from None
        data, node = parse_yaml_text(text, file, CatalogError)
        if not isinstance(data, dict):
            raise CatalogError(f"{what} holds one mapping", file=file, line=1)
        _schema_error(schema, data, file, node)
        hit = (data, node)
        with _cache_lock:
            if len(_cache) >= MAX_CACHED:
                _cache.clear()
            _cache[key] = hit
    return copy.deepcopy(hit[0]), hit[1]


def _schema_error(schema: str, data: Any, file: str, node: yaml.Node | None) -> None:
    error = best_match(validator(schema).iter_errors(data))
    if error is None:
        return
    field = error_path(error)
    path = [] if field == "body" else field.split(".")
    raise CatalogError(error.message, file=file, line=line_of(node, _typed_path(node, path)),
                       field=field if field != "body" else None)


def _typed_path(node: yaml.Node | None, parts: list[str]) -> list[Any]:
    """A dotted field back to a node path: digits index a sequence, everything else is a key."""
    out: list[Any] = []
    current = node
    for part in parts:
        if isinstance(current, yaml.SequenceNode) and part.isdigit():
            out.append(int(part))
            index = int(part)
            current = current.value[index] if index < len(current.value) else None
        else:
            out.append(part)
            current = next((v for k, v in current.value if isinstance(k, yaml.ScalarNode) and k.value == part),
                           None) if isinstance(current, yaml.MappingNode) else None
    return out


def load_catalog(path: str | Path) -> dict[str, Any]:
    """The merged catalog from the shared file at ``path`` and its governorate files, checked.

    Raises :class:`CatalogError` naming the file, line and field of the first problem found.
    """
    shared_path = Path(path).resolve()
    file = str(shared_path)
    data, node = _load_file(shared_path, SHARED_SCHEMA, "the catalog file (revenue_pools, services, …)")
    # Where each part of the merged catalog came from, to put a line on each cross-reference problem.
    sources: dict[str, tuple[str, yaml.Node | None, list[Any]]] = {}
    governorates: dict[str, Any] = {}
    for code, gov in (data.get("governorates") or {}).items():
        governorates[str(code)] = gov
        sources[str(code)] = (file, node, ["governorates", code])
    pattern = data.pop("governorate_files", None)
    if pattern is not None:
        files = sorted(glob.glob(str(shared_path.parent / pattern)))
        if not files:
            raise CatalogError(f"no file matches {pattern!r} (relative to {shared_path.parent})", file=file,
                               line=line_of(node, ["governorate_files"]), field="governorate_files")
        for gov_file in files:
            gov_data, gov_node = _load_file(Path(gov_file), GOVERNORATE_SCHEMA,
                                            "a governorate file (code, name_ar, iban, …)")
            code = str(gov_data["code"])
            code_line = line_of(gov_node, ["code"])
            if not Path(gov_file).name.startswith(f"{code}-"):
                raise CatalogError(f"the file of governorate {code} is named {code}-<name>.yaml", file=gov_file,
                                   line=code_line, field="code")
            if code in governorates:
                raise CatalogError(f"governorate {code} is already defined in {sources[code][0]}", file=gov_file,
                                   line=code_line, field="code")
            governorates[code] = gov_data
            sources[code] = (gov_file, gov_node, [])
    data["governorates"] = governorates
    problems = _problems_of(data)
    if problems:
        where, message = problems[0]
        field = ".".join(str(p) for p in where)
        if len(where) >= 2 and where[0] == "governorates" and str(where[1]) in sources:
            gov_file, gov_node, prefix = sources[str(where[1])]
            inner = prefix + list(where[2:])
            raise CatalogError(message, file=gov_file, line=line_of(gov_node, inner),
                               field=".".join(str(p) for p in inner) or field)
        raise CatalogError(message, file=file, line=line_of(node, where), field=field or None)
    return data


def check_catalog(catalog: dict[str, Any]) -> None:
    """Raise :class:`CatalogError` (naming the field) for the first cross-reference problem of a
    catalog given as a dict (settings overrides, tests)."""
    problems = _problems_of(catalog)
    if problems:
        where, message = problems[0]
        raise CatalogError(message, field=".".join(str(p) for p in where) or None)


def validate_catalog(catalog: dict[str, Any]) -> None:
    """The merged catalog (after settings overrides) against ``contracts/cs-catalog.schema.json`` and
    :func:`catalog_problems`; :class:`CatalogError` naming the field. Remembered per content."""
    digest = _digest(catalog)
    with _cache_lock:
        if digest in _checked_catalogs:
            return
    error = best_match(validator(SHARED_SCHEMA).iter_errors(catalog))
    if error is not None:
        field = error_path(error)
        raise CatalogError(error.message, field=f"catalog.{field}" if field != "body" else "catalog")
    check_catalog(catalog)
    with _cache_lock:
        if len(_checked_catalogs) >= MAX_CACHED:
            _checked_catalogs.clear()
        _checked_catalogs.add(digest)


def _digest(catalog: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(catalog, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _problems_of(catalog: dict[str, Any]) -> list[Problem]:
    with _cache_lock:
        if _digest(catalog) in _checked_catalogs:
            return []
    return catalog_problems(catalog)


# --- cross-references ---------------------------------------------------------------------------------
def catalog_problems(catalog: dict[str, Any]) -> list[Problem]:
    """Every inconsistency the schema cannot see, as ``(path, message)``, in file order.

    Services: unique codes, unique line codes, known pools, a percentage only of fixed or per-unit
    lines of the same service, the value fields of each kind, default units the service charges by.
    Governorates: a known code (FACTS), the key equal to ``code``, a valid IBAN (mod 97), an account
    for every pool a service uses and none for an unknown pool, no account shared with another
    governorate, unique local units, overrides of lines that exist with the value their kind uses.
    """
    problems: list[Problem] = []
    pools = catalog.get("revenue_pools") or {}
    services: dict[str, dict[str, Any]] = {}
    used_pools: set[str] = set()
    for i, service in enumerate(catalog.get("services") or []):
        where: list[Any] = ["services", i]
        if service["code"] in services:
            problems.append((where + ["code"], f"service {service['code']} is defined twice"))
            continue
        services[service["code"]] = service
        lines = {}
        for j, line in enumerate(service["fee_lines"]):
            at = where + ["fee_lines", j]
            if line["code"] in lines:
                problems.append((at + ["code"], f"fee line {line['code']} is defined twice in {service['code']}"))
            lines[line["code"]] = line
            if line["revenue_pool"] not in pools:
                problems.append((at + ["revenue_pool"], f"unknown revenue pool {line['revenue_pool']!r}"
                                                        f" (known: {', '.join(sorted(pools))})"))
            used_pools.add(line["revenue_pool"])
            for other in ("amount", "rate", "unit", "rate_basis_points", "of"):
                if other in line and other not in _FIELDS_OF_KIND[line["kind"]]:
                    problems.append((at + [other], f"a {line['kind']} line takes "
                                                   f"{' and '.join(_FIELDS_OF_KIND[line['kind']])}, not {other}"))
        for j, line in enumerate(service["fee_lines"]):
            for k, ref in enumerate(line.get("of") or []):
                target = lines.get(ref)
                if target is None or ref == line["code"]:
                    problems.append((where + ["fee_lines", j, "of", k], f"percentage of unknown line {ref!r}"))
                elif target["kind"] == "percentage":
                    problems.append((where + ["fee_lines", j, "of", k],
                                     f"a percentage is of fixed or per-unit lines, and {ref} is a percentage"))
        charged = {line["unit"] for line in service["fee_lines"] if line["kind"] == "per_unit"}
        for unit in service.get("default_units") or {}:
            if unit not in charged:
                problems.append((where + ["default_units", unit],
                                 f"{service['code']} is not charged by {unit!r}"))
    owner_of_account: dict[str, str] = {}
    for code, gov in (catalog.get("governorates") or {}).items():
        code = str(code)
        where = ["governorates", code]
        if code not in GOVERNORATES:
            problems.append((where + ["code"], f"{code} is not an Egyptian governorate code"))
        if "code" in gov and str(gov["code"]) != code:
            problems.append((where + ["code"], f"code {gov['code']} is written under governorate {code}"))
        if not iban_valid(gov.get("iban")):
            problems.append((where + ["iban"], "the IBAN's check digits are wrong (ISO 13616 mod 97)"))
        accounts = gov.get("settlement_accounts") or {}
        for pool in (p for p in pools if p in used_pools and p not in accounts):
            problems.append((where + ["settlement_accounts"], f"no settlement account for revenue pool {pool}"))
        for pool, account in accounts.items():
            if pool not in pools:
                problems.append((where + ["settlement_accounts", pool], f"unknown revenue pool {pool!r}"))
            owner = owner_of_account.setdefault(str(account), code)
            if owner != code:
                problems.append((where + ["settlement_accounts", pool],
                                 f"account {account} is governorate {owner}'s already"))
        seen_units: set[str] = set()
        for k, unit in enumerate(gov.get("local_units") or []):
            if unit["code"] in seen_units:
                problems.append((where + ["local_units", k, "code"], f"local unit {unit['code']} is listed twice"))
            seen_units.add(unit["code"])
        for service_code, overrides in (gov.get("fee_overrides") or {}).items():
            service = services.get(service_code)
            if service is None:
                problems.append((where + ["fee_overrides", service_code], f"unknown service {service_code!r}"))
                continue
            lines = {line["code"]: line for line in service["fee_lines"]}
            for line_code, override in overrides.items():
                at = where + ["fee_overrides", service_code, line_code]
                line = lines.get(line_code)
                if line is None:
                    problems.append((at, f"{service_code} has no fee line {line_code!r} "
                                         f"(it has {', '.join(lines)})"))
                    continue
                for name in ("amount", "rate", "rate_basis_points"):
                    if name in override and name != OVERRIDE_FIELD_FOR_KIND[line["kind"]]:
                        problems.append((at + [name], f"{service_code} {line_code} is a {line['kind']} line: "
                                                      f"override its {OVERRIDE_FIELD_FOR_KIND[line['kind']]}"))
    return problems


_FIELDS_OF_KIND = {"fixed": ("amount",), "per_unit": ("rate", "unit"), "percentage": ("rate_basis_points", "of")}


def effective_service(catalog: dict[str, Any], service: dict[str, Any], governorate_code: str) -> dict[str, Any]:
    """``service`` with the governorate's ``fee_overrides`` applied (a copy; lines keep their order).

    Each overridden line carries ``"overridden": True`` so a listing can show what is local.
    """
    gov = (catalog.get("governorates") or {}).get(governorate_code) or {}
    overrides = (gov.get("fee_overrides") or {}).get(service["code"]) or {}
    out = copy.deepcopy(service)
    for line in out["fee_lines"]:
        change = overrides.get(line["code"])
        if change:
            line.update(copy.deepcopy(change))
            line["overridden"] = True
    return out
