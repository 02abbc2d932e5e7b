"""Retry policy for steps that talk to MySQL, S3 or Postgres: transient connection errors only."""

import dagster as dg

#: Three more attempts after 2 s, 4 s and 8 s. Steps raise ``TransientConnectionError`` for failures worth
#: retrying; data errors (bad values, failed checks) fail at once because retrying cannot fix them.
NETWORK_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL)
