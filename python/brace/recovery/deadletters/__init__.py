"""Dead letters: calls that were given up on, kept until someone settles them.

When brace.Recovery gives up on an operation, the call - its name, its
arguments, the error, the failure's category, the correlation id - goes to a
`DeadLetterStore` before the error reaches the caller. So does a call that
was served a stand-in value instead (a fallback's, or an escalation's skip or
use: `DeadLetter.served` says which), since the operation - a write, say -
was still not made. A letter stays "dead"
until it is settled: `replay()` runs it again and marks it "delivered" when it
succeeds, or a person `discard`s it with a reason. Every call given up on is
accounted for: delivered, still dead, or discarded by someone who said why.

Retention: settled letters are kept by default, so the store only grows. A
person may `compact()` it: remove the delivered and discarded letters settled
more than a given time ago, after appending them to a JSON-lines archive if
asked. Compaction never touches a dead letter nor a call in the outbox, and
says how many letters it removed; nothing else deletes a letter.

Reading costs what is read, not what is kept: `page()` lists letters a page
at a time (keyset pagination: each page starts after the last letter of the
one before, through an index), `replay()` reads the store a page at a time,
and `counts()` reads counts kept up to date as letters are written.

Arguments are stored as JSON. A value JSON cannot hold (a datetime, an open
file, a dict with non-str keys, an int of more than 4300 digits, which
Python will not read back from decimal text) is stored as its repr and
flagged: the letter still says what the call was, but it cannot be replayed
as it was made. Tuples come back as lists, subclasses of str, int and float
as the base type; every float comes back as it was (NaN and the infinities
too, as Python's json writes them). Nothing about a call makes storing it
fail: an object whose repr raises is described instead ("<pkg.Thing object
at 0x..; repr() raised RuntimeError>"), and so is an error whose str() or
class name cannot be read.

A call the process may not live to finish is kept too: `begin()` writes it
to the store's outbox (durably, before the call goes out: a write-ahead
record) and returns its outbox id; `end()` takes it out when the call returns
the operation's value, and `put(..., outbox_id=...)` turns it into its dead
letter in one transaction when it is given up on or served a stand-in. If the
process is killed in between, the call stays in the outbox, owned by a process
that is gone: `recover_interrupted()`, run by the next process (at start-up,
say), turns such calls into dead letters with error_type "brace.Interrupted"
- the server may or may not have seen them - and `replay` can make them again.
So every call the server may have seen is either logged as ended, or a dead
letter, or still in flight in a process that runs (or on another host: only
there can it be told whether its process runs). Outbox entries are not
letters: `counts()` counts letters only, and a call is counted from the moment
it becomes one.

Two stores: `SQLiteDeadLetters` (the default: a file that survives a crash of
the process) and `MemoryDeadLetters` (for tests).

The package's parts: the letters and their statuses (_letter), how arguments
are stored (_encoding), the process that owns a call in the outbox
(_process), what every store does (_store), the two stores (_memory, and
_sqlite with its schema in _schema) and the process's store (_default).
`replay` is one floor up, in brace.recovery: it runs letters through a
brace.Recovery, which puts them here.
"""

from brace.recovery.deadletters._default import default_store, set_default_store
from brace.recovery.deadletters._letter import INTERRUPTED, DeadLetter, InFlightCall, Owner, Status
from brace.recovery.deadletters._memory import MemoryDeadLetters
from brace.recovery.deadletters._sqlite import SQLiteDeadLetters
from brace.recovery.deadletters._store import DeadLetterStore

__all__ = [
    "INTERRUPTED",
    "DeadLetter",
    "DeadLetterStore",
    "InFlightCall",
    "MemoryDeadLetters",
    "Owner",
    "SQLiteDeadLetters",
    "Status",
    "default_store",
    "set_default_store",
]
