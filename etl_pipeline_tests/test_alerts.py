"""The run-failure sensor: it logs the failure and POSTs a JSON message to ALERT_WEBHOOK_URL when set."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from etl_pipeline.alerts import alert_on_run_failure, failure_payload


@dg.op
def breaks():
    raise RuntimeError("could not reach mysql+pymysql://etl:s3cret@mysql:3306/covid19")


@dg.job
def broken_job():
    breaks()


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"content_type": self.headers["Content-Type"], "body": json.loads(body)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def failure_context(instance: dg.DagsterInstance) -> dg.RunFailureSensorContext:
    result = broken_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return dg.build_run_status_sensor_context(
        sensor_name=alert_on_run_failure.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()


def test_failed_run_is_posted_to_the_webhook_with_the_password_redacted(webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
    with dg.DagsterInstance.ephemeral() as instance:
        context = failure_context(instance)
        alert_on_run_failure(context)
    [message] = received
    assert message["content_type"] == "application/json"
    body = message["body"]
    assert body["job"] == "broken_job" and body["run_id"] == context.dagster_run.run_id
    assert body["text"].startswith(f"covid19-etl: run {context.dagster_run.run_id} of job broken_job failed")
    assert "s3cret" not in json.dumps(body)


def test_without_a_webhook_nothing_is_posted(webhook, monkeypatch):
    _, received = webhook
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    with dg.DagsterInstance.ephemeral() as instance:
        alert_on_run_failure(failure_context(instance))
    assert received == []


def test_payload_redacts_urls():
    payload = failure_payload("j", "r1", "boom at postgresql://etl:hunter2@db:5432/w\\ntrace")
    assert "hunter2" not in json.dumps(payload) and payload["job"] == "j"
