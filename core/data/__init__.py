"""Data: feedback in, immutable dataset versions and validated provider files out.

The public surface faces use; the modules behind it are this package's own.
"""

from core.data import datasets, exports, feedback
from core.data.datasets import DatasetFilters, DatasetList, DatasetVersion, Recipe, VersionDiff
from core.data.exports import DatasetValidation, ExportResult
from core.data.feedback import IngestReport
from core.data.validation import ValidationReport

__all__ = [
    "DatasetFilters",
    "DatasetList",
    "DatasetValidation",
    "DatasetVersion",
    "ExportResult",
    "IngestReport",
    "Recipe",
    "ValidationReport",
    "VersionDiff",
    "datasets",
    "exports",
    "feedback",
]
