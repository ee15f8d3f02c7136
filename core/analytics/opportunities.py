"""Improvement opportunities: edit patterns turned into actions a person can take.

Each pattern an agent's users show (`patterns.pattern_report`) comes with the
actions that fit it, each as the `finetune` command that takes it (Slack runs
the same command from a button; agents over MCP are told the command):

- add to DPO pairs (every pattern): the next version of the agent's pairs
  dataset (`AGENT-pairs` unless named) selects, besides the phrases it
  already held, the edited drafts whose edits show this phrase (the recipe's
  `edit_phrases`), so the `openai-dpo` export and `jobs launch --method dpo`
  train on them as preference pairs: the user's final chosen over the draft;
- open a prompt experiment (style: filler, hedging, tone, length,
  formatting): a template A/B experiment on the agent's traffic, its current
  template (the one most of its last 30 days of feedback names) against a
  treatment template named after the change, split 50/50 unless told; the
  team serves the treatment with the prompt changed as the suggestion says
  and tags that feedback with its name, and `finetune ab ID` tells whether
  the change helped (an always-valid sequential test).

Content patterns (what users add or cut as facts) get only the DPO action: a
prompt cannot list every fact, the pairs teach it from the examples.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict, Field

from core.analytics import db
from core.analytics.acceptance import Span
from core.analytics.patterns import CANDIDATES, Pattern, PhraseKind, SuggestedAction, normalise_phrase, pattern_report
from core.analytics.performance import refresh
from core.data.datasets import NAME, DatasetVersion, Recipe, build_dataset, get_version, resolve_version
from core.errors import Conflict, InvalidInput, NotFound
from core.evaluation import ExperimentReport, create_experiment
from core.platform.actors import Actor
from core.platform.store import Store
from core.services import Services

TEMPLATE_DAYS = 30  # the current template is the one most of these last days' feedback names
DEFAULT_SPLIT = 50
_SLUG = re.compile(r"[^a-z0-9_-]+")


class PatternAction(BaseModel):
    model_config = ConfigDict(frozen=True)

    action: SuggestedAction
    label: str
    command: str = Field(description="The `finetune` command that takes the action (in Slack: /finetune ...).")
    ready: bool = Field(description="False when the command needs a value filled in first (a template name).")
    does: str = Field(description="What running the command does.")


class Opportunity(BaseModel):
    model_config = ConfigDict(frozen=True)

    pattern: Pattern
    actions: list[PatternAction] = Field(description="The suggested action first.")


class AgentOpportunities(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent: str
    edited_drafts: int
    unedited_drafts: int
    opportunities: list[Opportunity] = Field(description="Most frequent pattern first.")


class Opportunities(BaseModel):
    model_config = ConfigDict(frozen=True)

    agents: list[AgentOpportunities]


def improvement_opportunities(svc: Services, *, agent: str | None = None, limit: int = 10) -> Opportunities:
    """The top `limit` edit patterns of `agent` (of every agent mined, when None), each with its actions."""
    as_of = refresh(svc, patterns=True)
    store = svc.store
    names = [agent] if agent is not None else db.mined_agents(store)
    found = []
    for name in names:
        report = pattern_report(store, agent=name, limit=limit)
        control = current_template(store, name, as_of=as_of)
        found.append(
            AgentOpportunities(
                agent=name, edited_drafts=report.edited_drafts, unedited_drafts=report.unedited_drafts,
                opportunities=[Opportunity(pattern=p, actions=actions_for(name, p, control)) for p in report.patterns],
            )
        )  # fmt: skip
    return Opportunities(agents=found)


def actions_for(agent: str, pattern: Pattern, control: str | None) -> list[PatternAction]:
    """The actions that fit `pattern`, the suggested one first (see the module doc)."""
    dataset = pairs_dataset(agent)
    pairs = PatternAction(
        action=SuggestedAction.DPO_PAIRS,
        label="Add to DPO pairs",
        command=shlex.join(["finetune", "analytics", "dpo-pairs", agent, pattern.phrase]),
        ready=True,
        does=(
            f"builds the next version of dataset {dataset} with the {pattern.support:,} edited drafts of {agent} "
            f"that show '{pattern.phrase}' (and the phrases it already holds) as preference pairs, the final chosen "
            f"over the draft; train on it with `finetune jobs launch {dataset} --method dpo ...`"
        ),
    )
    if pattern.action != SuggestedAction.PROMPT_EXPERIMENT:
        return [pairs]
    words = ["finetune", "analytics", "prompt-experiment", agent, pattern.phrase]
    treatment = treatment_template(control or "TEMPLATE", pattern)
    experiment = PatternAction(
        action=SuggestedAction.PROMPT_EXPERIMENT,
        label="Open a prompt experiment",
        command=shlex.join(words if control else [*words, "--control", "TEMPLATE"]),
        ready=control is not None,
        does=(
            f"starts an A/B experiment on {agent}'s feedback of template {treatment} against "
            f"{control or 'its current template (name it: no feedback of it names a template)'}, "
            f"{DEFAULT_SPLIT}/{DEFAULT_SPLIT}: serve {treatment} with the prompt changed ({_advice(pattern)}) "
            f"and send its feedback with template={treatment}"
        ),
    )
    return [experiment, pairs]


# Taking the actions ---------------------------------------------------------------------------------------------


class PairsAdded(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent: str
    pattern: Pattern
    version: DatasetVersion = Field(description="The version built (or the same one, when nothing changed).")
    phrases: list[str] = Field(description="Every phrase whose examples the version holds.")
    next_step: str


def add_dpo_pairs(svc: Services, *, actor: Actor, agent: str, phrase: str, dataset: str | None = None) -> PairsAdded:
    """Build the next version of `dataset` (default AGENT-pairs) with the examples of `agent`'s pattern `phrase`."""
    refresh(svc, patterns=True)
    store = svc.store
    pattern = find_pattern(store, agent=agent, phrase=phrase)
    name = dataset if dataset is not None else pairs_dataset(agent)
    recipe = _pairs_recipe(store, name, agent, pattern.phrase)
    version = build_dataset(
        store, name=name, actor=actor, recipe=recipe,
        description=f"Preference pairs of {agent}'s drafts and their finals, by edit pattern",
    )  # fmt: skip
    return PairsAdded(
        agent=agent, pattern=pattern, version=version, phrases=recipe.filters.edit_phrases,
        next_step=(
            f"Train on it: `finetune jobs launch {version.id} --provider PROVIDER --base-model MODEL --method dpo`"
            " (the openai-dpo pairs: the final chosen over the draft)."
        ),
    )  # fmt: skip


def _pairs_recipe(store: Store, name: str, agent: str, phrase: str) -> Recipe:
    """The recipe of `name`'s next version: its latest recipe with `phrase` added, or a new one for `agent`."""
    try:
        latest = get_version(store, resolve_version(store, name)) if NAME.match(name) else None
    except NotFound:
        latest = None
    if latest is None:
        filters = {"agents": [agent], "edited_only": True, "edit_phrases": [phrase]}
        return Recipe.model_validate({"filters": filters})
    recipe = latest.recipe
    if not recipe.filters.edit_phrases:
        raise Conflict(
            f"dataset {name} selects its examples without edit phrases, so adding one would narrow it to that "
            "pattern's examples instead of adding them.",
            hint="Name a dataset of pairs with --dataset (a new name starts one).",
            dataset=name,
        )
    if recipe.filters.agents and agent not in recipe.filters.agents:
        raise Conflict(
            f"dataset {name} holds feedback of {', '.join(recipe.filters.agents)}, not of {agent}.",
            hint=f"Leave --dataset out ({pairs_dataset(agent)}), or name another dataset.",
            dataset=name,
        )
    data = recipe.model_dump()
    data["filters"].update(edited_only=True, edit_phrases=[*recipe.filters.edit_phrases, phrase])
    return Recipe.model_validate(data)


class PromptExperiment(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent: str
    pattern: Pattern
    experiment: ExperimentReport
    change: str = Field(description="What the treatment template's prompt should change.")
    next_step: str


def open_prompt_experiment(
    svc: Services,
    *,
    actor: Actor,
    agent: str,
    phrase: str,
    control: str | None = None,
    treatment: str | None = None,
    split: int = DEFAULT_SPLIT,
) -> PromptExperiment:
    """Start a template experiment for `agent`'s pattern `phrase`: `control` (default its current template)
    against `treatment` (default named after the change), `split` percent to the treatment."""
    as_of = refresh(svc, patterns=True)
    store = svc.store
    pattern = find_pattern(store, agent=agent, phrase=phrase)
    control = control if control is not None else current_template(store, agent, as_of=as_of)
    if control is None:
        raise InvalidInput(
            f"no feedback of {agent} in the last {TEMPLATE_DAYS} days names a template to compare with.",
            hint="Name the template the agent serves now with --control (MCP: `control`).",
            argument="control",
        )
    treatment = treatment if treatment is not None else treatment_template(control, pattern)
    report = create_experiment(svc, actor=actor, name=agent, templates=[control, treatment], split=split)
    share = report.experiment.split or 0.5
    return PromptExperiment(
        agent=agent, pattern=pattern, experiment=report, change=_advice(pattern),
        next_step=(
            f"Serve template {treatment} ({_advice(pattern)}) to {share:.0%} of {agent}'s conversations and send "
            f"their feedback with template={treatment}; `finetune ab {report.experiment.id}` shows where it stands."
        ),
    )  # fmt: skip


# Helpers -------------------------------------------------------------------------------------------------------


def find_pattern(store: Store, *, agent: str, phrase: str) -> Pattern:
    """The pattern of `agent` named `phrase` (normalised); NotFound listing the agent's top patterns."""
    wanted = normalise_phrase(phrase) if isinstance(phrase, str) else ""
    if not wanted:
        raise InvalidInput(
            f"`phrase` {phrase!r} holds no words.", hint="Give a phrase `analytics patterns` lists.", argument="phrase"
        )
    report = pattern_report(store, agent=agent, limit=CANDIDATES)
    for pattern in report.patterns:
        if pattern.phrase == wanted:
            return pattern
    top = ", ".join(f"'{p.phrase}'" for p in report.patterns[:5]) or "none yet"
    raise NotFound(
        f"{agent} has no edit pattern '{wanted}'.",
        hint=f"Its top patterns: {top}. `finetune analytics patterns --agent {agent}` lists them.",
        agent=agent,
        phrase=wanted,
    )


def current_template(store: Store, agent: str, *, as_of: date) -> str | None:
    """The template most of `agent`'s feedback of the last TEMPLATE_DAYS days names; None when none names one."""
    span = Span(start=as_of - timedelta(days=TEMPLATE_DAYS - 1), end=as_of)
    rows = db.rollup_totals(store, group_by=["template"], agent=agent, **span.bounds())
    named = [(row["events"], row["template"]) for row in rows if row["template"]]
    return max(named)[1] if named else None


def treatment_template(control: str, pattern: Pattern) -> str:
    """`a-without-let-me-analyze-this`: the control's name and the change."""
    change = "without" if pattern.kind == PhraseKind.DELETED else "with"
    return f"{control}-{change}-{_slug(pattern.phrase)[:60].strip('-')}"[:256]


def pairs_dataset(agent: str) -> str:
    """`support-pairs`: the dataset an agent's preference pairs go to (a dataset name, whatever the agent's)."""
    slug = _slug(agent).strip("-_")[:50]
    if not slug:
        slug = "agent-" + hashlib.sha256(agent.encode()).hexdigest()[:8]
    return f"{slug}-pairs"


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.lower())


def _advice(pattern: Pattern) -> str:
    return pattern.suggestion.rsplit(": ", 1)[-1]
