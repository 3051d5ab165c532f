"""Site configuration: a clinic's values for the rule set's parameters, within declared bounds.

A site file is TOML:

    [site]
    name = "Example foot clinic"

    [parameters.persistent_pain_weeks]
    value = 10
    reason = "local pathway: review at 10 weeks"
    set_by = "Dr A. Example, clinical lead, 2026-11-30"

Each override needs a value within the parameter's bounds, a reason and who set it. The rule
set's digest and every result then carry the site's values (`RuleSet.with_site`). The CLI takes
`--site FILE`; the API and the service read the file named by `$CDS_SITE` when no site is given.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from engine.kernel.errors import RuleSetError, SiteError
from engine.kernel.rulebase import Override, RuleSet, Site

#: The environment variable naming a site file for the API and the service.
SITE_ENV = "CDS_SITE"
_OVERRIDE_KEYS = {"value", "reason", "set_by"}


def parse_site(data: dict[str, Any], source: str = "") -> Site:
    """A `Site` from parsed TOML, or `SiteError` naming the key at fault."""
    unknown = sorted(set(data) - {"site", "parameters"})
    if unknown:
        raise SiteError(f"site file: unknown table {unknown[0]!r} (allowed: [site], [parameters.NAME])")
    head = data.get("site", {})
    if not isinstance(head, dict) or set(head) - {"name"}:
        raise SiteError('site file: [site] holds only name = "..."')
    name = head.get("name", Path(source).stem if source else "site")
    if not isinstance(name, str) or not name.strip():
        raise SiteError("site file: site.name must be a non-empty string")
    params = data.get("parameters", {})
    if not isinstance(params, dict):
        raise SiteError("site file: parameters must be tables, [parameters.NAME]")
    overrides: dict[str, Override] = {}
    for pname, body in params.items():
        where = f"parameters.{pname}"
        if not isinstance(body, dict):
            raise SiteError(f"site file: {where} must be a table with value, reason and set_by")
        extra = sorted(set(body) - _OVERRIDE_KEYS)
        if extra:
            raise SiteError(f"site file: {where}.{extra[0]} is not allowed (allowed: value, reason, set_by)")
        for key in ("value", "reason", "set_by"):
            if key not in body:
                raise SiteError(f"site file: {where}.{key} is missing (every override needs value, reason and set_by)")
        for key in ("reason", "set_by"):
            if not isinstance(body[key], str) or not body[key].strip():
                raise SiteError(f"site file: {where}.{key} must be a non-empty string")
        overrides[pname] = Override(value=body["value"], reason=body["reason"].strip(), set_by=body["set_by"].strip())
    return Site(name=name.strip(), overrides=overrides, source=source)


def load_site(path: str | os.PathLike[str]) -> Site:
    """Read and parse a site file (`SiteError` when it cannot be read or is not valid TOML)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SiteError(f"site file {p.name!r} could not be read ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise SiteError(f"site file {p.name!r} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SiteError(f"site file {p.name!r} is not valid TOML: {exc}") from None
    return parse_site(data, str(p))


def apply_site(ruleset: RuleSet, site: Site | str | os.PathLike[str] | None) -> RuleSet:
    """`ruleset` with the site's values (a `Site`, a path, or None for `$CDS_SITE` if set)."""
    if site is None:
        env = os.environ.get(SITE_ENV)
        if not env:
            return ruleset
        site = env
    if not isinstance(site, Site):
        site = load_site(site)
    try:
        return ruleset.with_site(site)
    except RuleSetError as exc:
        raise SiteError(str(exc)) from None
