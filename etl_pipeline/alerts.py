"""Run-failure alerting: log every failed run and, when ``ALERT_WEBHOOK_URL`` is set, POST it as JSON."""

from __future__ import annotations


import dagster as dg
import requests

from etl_pipeline.core.redaction import redact
from etl_pipeline.settings import Settings

WEBHOOK_TIMEOUT_S = 10


def failure_payload(job_name: str, run_id: str, error: str | None) -> dict[str, str]:
    """The JSON body sent to the webhook (Slack-compatible ``text`` plus structured fields)."""
    error = redact(error or "unknown error")
    return {
        "text": f"covid19-etl: run {run_id} of job {job_name} failed: {error.splitlines()[0] if error else ''}",
        "job": job_name,
        "run_id": run_id,
        "error": error,
    }


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    description="Logs each failed run; posts a JSON message to $ALERT_WEBHOOK_URL when it is set.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
)
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    error = context.failure_event.message if context.failure_event else None
    payload = failure_payload(context.dagster_run.job_name, context.dagster_run.run_id, error)
    context.log.error(payload["text"])
    url = Settings.from_env().alert_webhook_url
    if url:
        response = requests.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_S)
        response.raise_for_status()
