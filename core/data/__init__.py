"""Data: feedback in, immutable dataset versions and validated provider files out.

The public surface faces use; the modules behind it are this package's own.
`targets` is the export-target registry (one entry per `core.vocabulary.ExportTarget`).
"""

from core.data import capture, datasets, exports, feedback, targets
from core.data.datasets import DatasetFilters, DatasetList, DatasetVersion, Recipe, VersionDiff
from core.data.exports import DatasetValidation, ExportResult
from core.data.feedback import IngestReport
from core.data.targets import TARGETS, TargetSpec
from core.data.validation import ValidationReport

__all__ = [
    "TARGETS",
    "DatasetFilters",
    "DatasetList",
    "DatasetValidation",
    "DatasetVersion",
    "ExportResult",
    "IngestReport",
    "Recipe",
    "TargetSpec",
    "ValidationReport",
    "VersionDiff",
    "capture",
    "datasets",
    "exports",
    "feedback",
    "targets",
]
