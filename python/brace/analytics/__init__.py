"""Error analytics of the recovery log: what failed, how often, how fast it recovered, and
what is getting worse.

Reads what brace writes: a JSON-lines file of a JsonLinesSink, or the events of a
MemorySink or a RecoveryLog in memory (`load`). `analyze` gives a `Report`:
error fingerprints (type + message template + HTTP status + the innermost
frames where it was raised), failures and their impact by fingerprint, dependency
and category, per-window series of calls, errors, error rate and recovery
time, anomalies of the error rate (EWMA z-score), early warnings of a
dependency's failure rate rising toward its breaker's threshold (a
least-squares line), and MTTR and MTBF per dependency. `brace report LOG.jsonl`
shows it as tables, JSON or a chart.

Needs numpy (the `analytics` extra: `pip install "brace[analytics]"`, which
brings matplotlib for the chart too); brace itself does not.
"""

try:
    import numpy  # noqa: F401
except ImportError as missing:  # say which extra brings it
    raise ImportError('brace.analytics needs numpy, which is not installed: pip install "brace[analytics]"',
                      name=missing.name) from None  # fmt: skip

from brace.analytics._fingerprint import fingerprint, template
from brace.analytics._records import Loaded, LogFormatError, Record, dependency_of, load
from brace.analytics._report import Episode, Report, analyze, episodes
from brace.analytics._series import Anomaly, EarlyWarning, Series, detect_anomalies, early_warning

__all__ = [
    "Anomaly",
    "EarlyWarning",
    "Episode",
    "Loaded",
    "LogFormatError",
    "Record",
    "Report",
    "Series",
    "analyze",
    "dependency_of",
    "detect_anomalies",
    "early_warning",
    "episodes",
    "fingerprint",
    "load",
    "template",
]
