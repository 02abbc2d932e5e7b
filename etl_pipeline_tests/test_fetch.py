"""fetch_data against a real HTTP server on 127.0.0.1 laid out like the upstream (files under their upstream names)."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from etl_pipeline.fetch import (
    DATASET_FILES,
    UPSTREAM_BASE_URL,
    FetchError,
    default_base_url,
    fetch_data,
    vintages,
    missing_or_invalid,
)
from etl_pipeline_tests.conftest import free_port

ALL_NAMES = [f.name for f in DATASET_FILES]
WORLDOMETER = next(f for f in DATASET_FILES if f.name == "covid19_worldometer.csv")
COUNTRY_WISE = next(f for f in DATASET_FILES if f.name == "covid19_country_wise.csv")
TRUNCATE = "truncate"


class Upstream:
    """What the test server serves, the paths it was asked for, and the failures it injects first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base_url = ""
        self.requests: list[str] = []
        self.failures: dict[str, list[int | str]] = {}

    def requests_for(self, upstream_name: str) -> int:
        return self.requests.count(f"/{upstream_name}")

    def fail(self, upstream_name: str, *actions: int | str) -> None:
        """Answer the next requests for the file with these HTTP statuses (or TRUNCATE), then serve it."""
        self.failures[f"/{upstream_name}"] = list(actions)


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, upstream: Upstream, **kwargs) -> None:
        self.upstream = upstream
        super().__init__(*args, directory=str(upstream.root), **kwargs)

    def do_GET(self) -> None:
        self.upstream.requests.append(self.path)
        pending = self.upstream.failures.get(self.path)
        if not pending:
            super().do_GET()
        elif (action := pending.pop(0)) == TRUNCATE:
            body = (self.upstream.root / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.send_error(action)

    def log_message(self, format: str, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def upstream(tmp_path: Path, data_dir: Path) -> Iterator[Upstream]:
    root = tmp_path / "upstream"
    root.mkdir()
    for f in DATASET_FILES:
        shutil.copyfile(data_dir / f.name, root / f.upstream_name)
    served = Upstream(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, upstream=served))
    served.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "dest"


def fetch(dest: Path, upstream: Upstream, **kwargs) -> list[Path]:
    return fetch_data(dest, base_url=upstream.base_url, backoff_s=0, progress=False, **kwargs)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetches_every_file_byte_identical_with_a_progress_bar(upstream, dest, data_dir, capsys):
    assert missing_or_invalid(dest) == ALL_NAMES

    fetched = fetch_data(dest, base_url=upstream.base_url, backoff_s=0, progress=True)

    assert fetched == [dest / name for name in ALL_NAMES]
    assert sorted(p.name for p in dest.iterdir()) == sorted(ALL_NAMES)  # no temp files left
    for f in DATASET_FILES:
        published = (data_dir / f.name).read_bytes()
        assert (dest / f.name).read_bytes() == published
        assert sha256_hex(published) == f.sha256
    assert missing_or_invalid(dest) == []
    assert sorted(upstream.requests) == sorted(f"/{f.upstream_name}" for f in DATASET_FILES)
    progress_output = capsys.readouterr().err
    for name in ALL_NAMES:
        assert name in progress_output


def test_no_progress_output_when_disabled(upstream, dest, capsys):
    fetch(dest, upstream)
    assert capsys.readouterr().err == ""


def test_checksum_mismatch_is_final_and_leaves_nothing_in_place(upstream, dest):
    served = upstream.root / WORLDOMETER.upstream_name
    corrupted = served.read_bytes().replace(b"USA", b"USB", 1)
    served.write_bytes(corrupted)
    dest.mkdir()
    (dest / WORLDOMETER.name).write_text("a stale, wrong copy\n")

    with pytest.raises(FetchError) as raised:
        fetch(dest, upstream)

    message = str(raised.value)
    assert WORLDOMETER.name in message
    assert f"{upstream.base_url}/{WORLDOMETER.upstream_name}" in message
    assert WORLDOMETER.sha256 in message
    assert sha256_hex(corrupted) in message
    assert upstream.requests_for(WORLDOMETER.upstream_name) == 1
    left = [p.name for p in dest.iterdir()]
    assert WORLDOMETER.name not in left
    assert set(left) <= set(ALL_NAMES)  # only files fetched before the failure, no temp files
    assert missing_or_invalid(dest) == [name for name in ALL_NAMES if name not in left]


@pytest.mark.parametrize("failure", [503, 500, 429, TRUNCATE])
def test_transient_failure_is_retried(upstream, dest, data_dir, failure):
    upstream.fail(COUNTRY_WISE.upstream_name, failure)

    fetch(dest, upstream)

    assert upstream.requests_for(COUNTRY_WISE.upstream_name) == 2
    assert (dest / COUNTRY_WISE.name).read_bytes() == (data_dir / COUNTRY_WISE.name).read_bytes()
    assert missing_or_invalid(dest) == []


def test_gives_up_after_the_retries(upstream, dest):
    upstream.fail(COUNTRY_WISE.upstream_name, *[503] * 5)

    with pytest.raises(FetchError, match=r"covid19_country_wise\.csv: .*HTTP 503.*after 3 attempts"):
        fetch(dest, upstream, retries=2)

    assert upstream.requests_for(COUNTRY_WISE.upstream_name) == 3
    assert COUNTRY_WISE.name not in [p.name for p in dest.iterdir()]


def test_not_found_is_not_retried(upstream, dest):
    (upstream.root / WORLDOMETER.upstream_name).unlink()

    with pytest.raises(FetchError) as raised:
        fetch(dest, upstream)

    assert str(raised.value).startswith(
        f"{WORLDOMETER.name}: download from {upstream.base_url}/{WORLDOMETER.upstream_name} failed: HTTP 404"
    )
    assert upstream.requests_for(WORLDOMETER.upstream_name) == 1
    assert WORLDOMETER.name not in [p.name for p in dest.iterdir()]


def test_connection_refused_is_a_fetch_error(dest):
    base_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    with pytest.raises(FetchError, match=r"ConnectionError.*after 2 attempts") as raised:
        fetch_data(dest, base_url=base_url, retries=1, backoff_s=0, progress=False)

    assert raised.value.url == f"{base_url}/{DATASET_FILES[0].upstream_name}"
    assert list(dest.iterdir()) == []


def test_valid_files_are_not_downloaded_again(upstream, dest):
    fetch(dest, upstream)
    upstream.requests.clear()
    (dest / COUNTRY_WISE.name).unlink()
    (dest / WORLDOMETER.name).write_text("edited by hand\n")
    assert missing_or_invalid(dest) == [COUNTRY_WISE.name, WORLDOMETER.name]

    fetched = fetch(dest, upstream)

    assert fetched == [dest / COUNTRY_WISE.name, dest / WORLDOMETER.name]
    assert sorted(upstream.requests) == sorted(
        [f"/{COUNTRY_WISE.upstream_name}", f"/{WORLDOMETER.upstream_name}"]
    )
    assert missing_or_invalid(dest) == []

    upstream.requests.clear()
    assert fetch(dest, upstream) == []
    assert upstream.requests == []


def test_default_base_url_reads_the_environment(monkeypatch):
    monkeypatch.delenv("COVID_DATA_BASE_URL", raising=False)
    assert default_base_url() == UPSTREAM_BASE_URL
    monkeypatch.setenv("COVID_DATA_BASE_URL", "http://mirror.example/covid")
    assert default_base_url() == "http://mirror.example/covid"


# -- `covid-etl run --data-dir`: a named directory is the user's; nothing is downloaded into it unasked ----------
def run_with_data_dir(data_dir: Path, upstream: Upstream, monkeypatch, capsys, *flags: str) -> tuple[int, str]:
    from etl_pipeline.cli import main

    monkeypatch.setenv("COVID_DATA_BASE_URL", upstream.base_url)
    monkeypatch.setenv("ETL_HOME", str(data_dir.parent / "etl_home"))
    status = main(["run", "--data-dir", str(data_dir), *flags])
    return status, capsys.readouterr().err


def test_a_data_dir_that_does_not_exist_is_an_error_and_is_not_created(upstream, tmp_path, monkeypatch, capsys):
    typo = tmp_path / "covid19-typo"
    status, err = run_with_data_dir(typo, upstream, monkeypatch, capsys)
    assert (status, err) == (1, f"covid-etl run: error: --data-dir {typo}: no such directory\n")
    assert not typo.exists() and upstream.requests == []


def test_a_data_dir_without_the_files_names_them_and_downloads_only_when_asked(upstream, tmp_path, monkeypatch,
                                                                               capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    status, err = run_with_data_dir(empty, upstream, monkeypatch, capsys)
    assert (status, err) == (1, f"covid-etl run: error: --data-dir {empty} lacks {', '.join(sorted(ALL_NAMES))}; "
                                "add them, or add --download to download the published files into it\n")
    assert list(empty.iterdir()) == [] and upstream.requests == []

    from etl_pipeline.run import ensure_data

    ensure_data(tmp_path / "new", download=True)  # what `--download` does before the run proper
    assert missing_or_invalid(tmp_path / "new") == [] and len(upstream.requests) == len(DATASET_FILES)


def test_seed_with_a_data_dir_that_does_not_exist_says_so(tmp_path, monkeypatch, capsys):
    from etl_pipeline.cli import main

    monkeypatch.setenv("ETL_HOME", str(tmp_path / "etl_home"))
    assert main(["seed", "--data-dir", str(tmp_path / "covid91")]) == 1
    assert capsys.readouterr().err == f"covid-etl seed: error: --data-dir {tmp_path / 'covid91'}: no such directory\n"


# -- following an upstream that changes (--follow) ------------------------------------------------------------
def vintages_logged(dest: Path) -> list[dict]:
    """vintages.jsonl read as JSON, independently of :func:`vintages`."""
    return [json.loads(line) for line in (dest / "vintages.jsonl").read_text().splitlines()]


def test_follow_accepts_a_changed_upstream_as_a_new_vintage_and_keeps_the_previous(upstream, dest, data_dir):
    assert fetch(dest, upstream, follow=True) == [dest / name for name in ALL_NAMES]
    first = vintages(dest)
    assert [v.file for v in first] == ALL_NAMES and all(v.previous_sha256 is None for v in first)
    assert missing_or_invalid(dest) == []  # the published files, as published

    published = (upstream.root / WORLDOMETER.upstream_name).read_bytes()
    revised = published.replace(b"\nBrazil,South America,212710692,", b"\nBrazil,South America,212710700,")
    assert revised != published
    (upstream.root / WORLDOMETER.upstream_name).write_bytes(revised)

    assert fetch(dest, upstream, follow=True) == [dest / WORLDOMETER.name]
    vintage = vintages(dest)[-1]
    assert (vintage.file, vintage.sha256, vintage.previous_sha256, vintage.bytes) == (
        WORLDOMETER.name, sha256_hex(revised), WORLDOMETER.sha256, len(revised))
    assert vintage.url == f"{upstream.base_url}/{WORLDOMETER.upstream_name}"
    assert (dest / WORLDOMETER.name).read_bytes() == revised
    kept = dest / "vintages" / "covid19_worldometer" / f"{WORLDOMETER.sha256}.csv"
    assert kept.read_bytes() == published  # the previous vintage, not lost
    logged = vintages_logged(dest)
    assert len(logged) == 5 and logged[-1] == dataclasses.asdict(vintage)
    assert datetime.datetime.fromisoformat(vintage.fetched_at).tzinfo is not None

    assert fetch(dest, upstream, follow=True) == []  # unchanged
    assert len(vintages_logged(dest)) == 5
    assert sorted(p.name for p in dest.iterdir()) == sorted([*ALL_NAMES, "vintages", "vintages.jsonl"])


def test_follow_leaves_the_file_as_it_was_when_its_download_fails(upstream, dest):
    fetch(dest, upstream, follow=True)
    before = (dest / COUNTRY_WISE.name).read_bytes()
    upstream.fail(COUNTRY_WISE.upstream_name, 404)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(dest, upstream, follow=True)
    assert (dest / COUNTRY_WISE.name).read_bytes() == before
    assert len(vintages_logged(dest)) == 4
    assert not list(dest.glob(".*"))  # no partial download left behind



def test_a_fetch_without_follow_never_replaces_an_accepted_vintage(upstream, dest):
    fetch(dest, upstream, follow=True)
    served = upstream.root / WORLDOMETER.upstream_name
    served.write_bytes(served.read_bytes().replace(b"\nBrazil,South America,212710692,",
                                                   b"\nBrazil,South America,212710700,"))
    fetch(dest, upstream, follow=True)
    followed = (dest / WORLDOMETER.name).read_bytes()
    with pytest.raises(FetchError, match="holds the vintage .* accepted by --follow, not the published file"):
        fetch(dest, upstream)
    assert (dest / WORLDOMETER.name).read_bytes() == followed
