"""Analytics: daily rollups of feedback, acceptance over time, edit patterns and regression alerts.

`rollups` keeps per-day sums of feedback incrementally (the scheduler runs it);
`acceptance` reads only those sums: acceptance, unedited share, ratings,
trends, best and worst intents, and comparisons tested with
`core.evaluation.stats`; `patterns` mines the phrases users delete and add
into categorised suggestions; `regressions` is the daily check that raises,
deduplicates and resolves alerts. `db` holds all of their SQL. Faces import
from here.
"""

from core.analytics.acceptance import (
    DEFAULT_MIN_EVENTS,
    AcceptanceReport,
    AcceptanceStats,
    Comparison,
    Dimension,
    IntentRanking,
    Slice,
    Span,
    Totals,
    Trend,
    Window,
    acceptance_report,
    compare,
    intent_ranking,
    parse_dimension,
    parse_window,
    window_span,
)
from core.analytics.patterns import (
    ExampleDiff,
    MiningRun,
    Pattern,
    PatternCategory,
    PatternReport,
    PhraseKind,
    SuggestedAction,
    categorize,
    mine_patterns,
    pattern_report,
)
from core.analytics.regressions import (
    Alert,
    Attribution,
    Measurement,
    RegressionRules,
    RegressionRun,
    all_alerts,
    check_regressions,
    open_alerts,
)
from core.analytics.rollups import RollupRun, local_day, rebuild_rollups, roll_up, today

__all__ = [
    "DEFAULT_MIN_EVENTS",
    "AcceptanceReport",
    "AcceptanceStats",
    "Alert",
    "Attribution",
    "Comparison",
    "Dimension",
    "ExampleDiff",
    "IntentRanking",
    "Measurement",
    "MiningRun",
    "Pattern",
    "PatternCategory",
    "PatternReport",
    "PhraseKind",
    "RegressionRules",
    "RegressionRun",
    "RollupRun",
    "Slice",
    "Span",
    "SuggestedAction",
    "Totals",
    "Trend",
    "Window",
    "acceptance_report",
    "all_alerts",
    "categorize",
    "check_regressions",
    "compare",
    "intent_ranking",
    "local_day",
    "mine_patterns",
    "open_alerts",
    "parse_dimension",
    "parse_window",
    "pattern_report",
    "rebuild_rollups",
    "roll_up",
    "today",
    "window_span",
]
