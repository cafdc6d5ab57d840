"""`python -m brace demo`: a chaos run of the recovery layer against a simulated API.

A records service with two regions is called a few thousand times through one
brace.Recovery, configured the way a user of such a service would configure
it. The service fails the way real ones do, with state: requests time out
after the client's timeout, a reset leaves the pooled connection broken until
someone reconnects, a 429 keeps coming until its Retry-After has passed, a
region's 503 outage lasts seconds, the access token expires every few
minutes, the provider changes its payload's shape once, and some records do
not exist (404: nothing heals that; a person must look).

Every figure is counted outside brace: attempts made by the service itself
(per correlation id, as its access log would), attempts logged by reading the
recovery log's sink back, losses by checking each call's outcome and each
dead letter in the store. brace's own `recovery.stats()` is reported next to
them as a cross-check, not used for the verdict.

Time is simulated: with `--clock fake` (the default) brace's clock is frozen
and both the service's waits and brace's sleeps advance it, so an hour of
traffic takes seconds; with `--clock real --speed K` every simulated duration
(the service's waits, Retry-After, the backoffs, the healing time) is divided
by K and a few threads call concurrently. Reported times are simulated seconds.

The demo's parts: its settings and options (_settings), the simulated
service and the client (_service), the scenario (_scenario: the calls and the
fault kinds), the run (_run: the recovery as configured, the calls, the
replay), the report's figures (_report), how they are shown (_render) and the
command (_command).
"""

from brace._cli.demo._command import main
from brace._cli.demo._render import render_plain, render_rich
from brace._cli.demo._run import build_recovery, run
from brace._cli.demo._scenario import CATEGORIES, OPERATION
from brace._cli.demo._service import HTTPError, RecordsAPI, RecordsClient, record
from brace._cli.demo._settings import Settings, add_arguments

__all__ = [
    "CATEGORIES",
    "HTTPError",
    "OPERATION",
    "RecordsAPI",
    "RecordsClient",
    "Settings",
    "add_arguments",
    "build_recovery",
    "main",
    "record",
    "render_plain",
    "render_rich",
    "run",
]
