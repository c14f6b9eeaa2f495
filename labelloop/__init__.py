"""labelloop: an active-learning orchestrator for data labeling, on AWS Step Functions or locally."""

__version__ = "0.1.0"
