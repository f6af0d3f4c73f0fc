"""The short run of the fault suite (tests/chaos/chaos.py --short), for
`make test`: ~300 jobs over ~70 s on a private stack with its own
RabbitMQ, Redis and FerretDB (it restarts and pauses them, so it never
uses the shared ones tests/run.sh exports), while workers are SIGKILLed,
RabbitMQ restarted, Redis paused and FerretDB stopped for 10 s. Passes
when every job answered 202 ends in one terminal state in Redis with
exactly one matching record in MongoDB. About 2 minutes, under 3.

BX_CHAOS_SHORT_ARGS adds options (e.g. "--jobs 500 --seed 42").
"""
import os
import shlex
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "chaos"))

import chaos  # noqa: E402

if __name__ == "__main__":
    sys.exit(chaos.main(["--short"] + shlex.split(os.environ.get("BX_CHAOS_SHORT_ARGS", ""))))
