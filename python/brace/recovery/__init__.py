"""The recovery layer: brace.Recovery and what it is made of.

Classification decides what a failure is; the engine (Recovery) retries, heals,
falls back, escalates to a person and dead-letters, and logs every attempt.
Its parts, each in its own private module: events and correlation ids, the log
and its sinks, statistics, healing actions, fallbacks, escalation and decisions,
the operator's control and switchboard, the dead-letter stores (the deadletters
package) and replay, which runs dead letters through a Recovery.
"""

from brace.recovery._engine import (
    Recovery,
    RecoveryEvent,
)
from brace.recovery._log import (
    JsonLinesSink,
    LoggingSink,
    MemorySink,
    RecoveryLog,
    correlation,
    correlation_id,
    event_dict,
    new_correlation_id,
)
from brace.recovery._stats import (
    CategoryStats,
    RecoveryStats,
)
from brace.recovery._healing import (
    HealingAction,
    HealingContext,
    HealingStats,
    StrategyRecord,
)
from brace.recovery._fallback import (
    Alternative,
    Degraded,
    Fallback,
    FallbackEvent,
)
from brace.recovery._escalation import (
    AttemptRecord,
    Decision,
    Escalation,
    Option,
)
from brace.recovery._escalation_policy import (
    EscalationHandler,
    EscalationPolicy,
    LoggingHandler,
    QueueHandler,
)
from brace.recovery._control import (
    Control,
    control,
)
from brace.recovery._switchboard import (
    Switchboard,
    ToggleEvent,
    switches,
)
from brace.recovery.deadletters import (
    INTERRUPTED,
    DeadLetter,
    DeadLetterStore,
    InFlightCall,
    MemoryDeadLetters,
    Owner,
    SQLiteDeadLetters,
    default_store,
    set_default_store,
)
from brace.recovery._replay import (
    ReplayReport,
    replay,
    replay_async,
)

__all__ = [
    "Alternative",
    "AttemptRecord",
    "CategoryStats",
    "Control",
    "DeadLetter",
    "DeadLetterStore",
    "Decision",
    "Degraded",
    "Escalation",
    "EscalationHandler",
    "EscalationPolicy",
    "Fallback",
    "FallbackEvent",
    "HealingAction",
    "HealingContext",
    "HealingStats",
    "INTERRUPTED",
    "InFlightCall",
    "JsonLinesSink",
    "LoggingHandler",
    "LoggingSink",
    "MemoryDeadLetters",
    "MemorySink",
    "Option",
    "Owner",
    "QueueHandler",
    "Recovery",
    "RecoveryEvent",
    "RecoveryLog",
    "RecoveryStats",
    "ReplayReport",
    "SQLiteDeadLetters",
    "StrategyRecord",
    "Switchboard",
    "ToggleEvent",
    "control",
    "correlation",
    "correlation_id",
    "default_store",
    "event_dict",
    "new_correlation_id",
    "replay",
    "replay_async",
    "set_default_store",
    "switches",
]
