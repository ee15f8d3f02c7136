"""Contract tests: every data registry has one complete entry per vocabulary member, and no other."""

import pytest

from core.catalog import models as catalog_models
from core.catalog.models import load_catalog
from core.catalog.pricing import BILLING_RULES
from core.data import exports, formats
from core.data.examples import Example
from core.data.rules import Issues, TargetRules
from core.data.targets import TARGETS, TargetSpec, require_target
from core.errors import InvalidInput
from core.vocabulary import CatalogProvider, ExportTarget, Method, values

CATALOG = load_catalog()
EXAMPLE = Example(
    id="contract",
    system="Be brief.",
    messages=({"role": "user", "content": "Where is order 1182?"},),
    output="It ships today.",
    final="It ships today, tracking to follow.",
)


def test_the_target_registry_has_exactly_one_entry_per_export_target():
    assert set(TARGETS) == set(ExportTarget)
    assert all(type(key) is ExportTarget for key in TARGETS)


@pytest.mark.parametrize("target", list(ExportTarget))
def test_every_target_entry_is_complete(target):
    spec = TARGETS[target]
    assert isinstance(spec, TargetSpec) and spec.name is target
    assert spec.description.strip()
    assert callable(spec.converter)
    assert isinstance(spec.rules, TargetRules)
    assert type(spec.rules).check is not TargetRules.check and type(spec.rules).count is not TargetRules.count
    default = CATALOG.get(spec.default_model)
    assert default is not None, f"{target}'s default model {spec.default_model} is not in the bundled catalog"
    assert default.family == spec.family, f"{spec.default_model} is a {default.family} model, not {spec.family}"
    assert require_target(target.value) is spec


@pytest.mark.parametrize("target", list(ExportTarget))
def test_every_converter_writes_rows_its_rules_accept(target):
    row = formats.to_row(EXAMPLE, target)
    assert row is not None
    issues = Issues()
    TARGETS[target].rules.check(row, issues, TARGETS[target].default_model)
    assert issues == []


def test_every_catalog_model_trains_on_a_registered_target_of_its_family():
    """Or on one its entry names for a method: local models train DPO on the openai-dpo pairs."""
    for info in CATALOG.models.values():
        for method in info.methods:
            spec = TARGETS[info.export_target_for(method)]
            named = spec.name in info.export_targets.values()
            assert spec.family == info.family or named, f"{info.id} ({info.family}) exports {spec.name} ({spec.family})"


def test_the_names_faces_use_are_derived_from_the_registry():
    assert exports.Target is ExportTarget
    assert {spec.name.value: spec.default_model for spec in TARGETS.values()} == exports.DEFAULT_MODELS
    assert list(exports.DEFAULT_MODELS) == values(ExportTarget)
    assert all(type(name) is str for name in exports.DEFAULT_MODELS)  # plain text, for click choices


def test_catalog_lists_come_from_the_vocabulary():
    assert tuple(values(CatalogProvider)) == catalog_models.PROVIDERS
    assert tuple(values(ExportTarget)) == catalog_models.EXPORT_TARGETS
    assert tuple(values(Method)) == catalog_models.METHODS
    assert set(BILLING_RULES) == set(CatalogProvider)


def test_an_unknown_target_is_refused_naming_every_valid_one():
    with pytest.raises(InvalidInput) as caught:
        require_target("vertex")
    hint = caught.value.hint
    assert hint is not None
    assert all(name in hint for name in values(ExportTarget))
