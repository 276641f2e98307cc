"""Config overrides: relax, tighten, disable or add expectations without touching code.

An override names a rule by its stable name (`price_within_limits.IDA`) or by its family
(`price_within_limits`, every segment). `enabled: false` drops the rule; `kwargs` replace its
GX kwargs (`max_value`, `mostly`, `value_set` ...). A name that matches no rule adds one, and
then `kwargs.type` names the GX expectation (e.g. `unexpected_rows_expectation` with an
`unexpected_rows_query` over `{batch}`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from jobs.config import ConfigError, ExpectationOverride
from reconcilers.contract import DATASETS, Dataset
from expectations.rules import Rule


def _matches(rule: Rule, name: str) -> bool:
    return rule.name == name or rule.name.startswith(name + ".")


def _added(o: ExpectationOverride, known: list[str]) -> Rule:
    kwargs = dict(o.kwargs)
    gx_type = kwargs.pop("type", None)
    if not isinstance(gx_type, str) or not gx_type:
        raise ConfigError(
            f"expectations.overrides: {o.dataset}/{o.expectation} matches no expectation "
            f"(known: {', '.join(known)}); to add one, give its GX type in kwargs.type"
        )
    return Rule(o.expectation, gx_type, kwargs, kwargs.get("column"), f"added by config: {gx_type}")


def apply_overrides(ds: Dataset, rules: list[Rule], overrides: Iterable[ExpectationOverride]) -> list[Rule]:
    out = list(rules)
    known = sorted({r.name.split(".")[0] + (".*" if "." in r.name else "") for r in rules})
    for o in overrides:
        if o.dataset not in DATASETS:
            raise ConfigError(f"expectations.overrides: unknown dataset {o.dataset!r}; expected one of {sorted(DATASETS)}")
        if o.dataset != ds.name:
            continue
        if not any(_matches(r, o.expectation) for r in out):
            added = _added(o, known)  # raises on a name that is neither known nor a new rule
            if o.enabled:
                out.append(added)
            continue
        if not o.enabled:
            out = [r for r in out if not _matches(r, o.expectation)]
        elif o.kwargs:
            out = [replace(r, kwargs={**r.kwargs, **o.kwargs}) if _matches(r, o.expectation) else r for r in out]
    return out
