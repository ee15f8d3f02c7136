"""Training: launch, watch and cancel fine-tuning jobs; plan their cost and hyperparameters."""

from core.training import jobs, planning
from core.training.hyperparams import HyperparameterSuggestion, check_hyperparameters
from core.training.jobs import Job, JobDetail, JobEvent, JobEvents, JobList, LaunchResult

__all__ = [
    "HyperparameterSuggestion",
    "Job",
    "JobDetail",
    "JobEvent",
    "JobEvents",
    "JobList",
    "LaunchResult",
    "check_hyperparameters",
    "jobs",
    "planning",
]
