"""Error classification: what a failure is (a Category) and how to treat it.

The layer between the primitives and the recovery layer: brace.Recovery and
brace.Fallback ask it what a failure is; brace.Retry accepts a classifier
through a small protocol and never imports it.

Its parts: the categories and their treatments (_categories), what a verdict
says (_classification), the user's rules (_rules), how the errors of the
standard library and of HTTP libraries are recognised (_recognize), and the
classifier that tries them in order (_classifier).
"""

from brace.classify._categories import DEFAULT_TREATMENTS, Category, Severity, Strategy, Treatment
from brace.classify._classification import Classification
from brace.classify._classifier import DEFAULT_CLASSIFIER, ErrorClassifier
from brace.classify._rules import Rule

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
