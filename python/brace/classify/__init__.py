"""Error classification: what a failure is (a Category) and how to treat it.

The layer between the primitives and the recovery layer: brace.Recovery and
brace.Fallback ask it what a failure is; brace.Retry accepts a classifier
through a small protocol and never imports it.
"""

from brace.classify._classifier import (
    DEFAULT_CLASSIFIER,
    DEFAULT_TREATMENTS,
    Category,
    Classification,
    ErrorClassifier,
    Rule,
    Severity,
    Strategy,
    Treatment,
)

__all__ = [
    "DEFAULT_CLASSIFIER",
    "DEFAULT_TREATMENTS",
    "Category",
    "Classification",
    "ErrorClassifier",
    "Rule",
    "Severity",
    "Strategy",
    "Treatment",
]
