"""Download the four COVID-19 CSVs from their public URLs and verify them (``covid-etl fetch-data``).

A local file is either absent or byte-identical to the published one: each download is streamed
into a temporary file next to its target, its sha256 checked, and only then renamed into place.

With ``follow`` (``covid-etl fetch-data --follow``) the upstream may change: every file is downloaded, and a
content that differs from the local file is accepted as a new **vintage**: the previous file is kept as
``vintages/<file stem>/<its sha256>.csv`` and a line ``{"file", "sha256", "previous_sha256", "fetched_at",
"url", "bytes"}`` is appended to ``vintages.jsonl`` in the data directory, so no vintage is replaced without a
trace.
Connection errors, timeouts, truncated bodies and HTTP 5xx/429 are retried with exponential backoff;
anything else (HTTP 404, a checksum mismatch) is final, because trying again would give the same answer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import requests
from tqdm import tqdm

UPSTREAM_BASE_URL = "https://raw.githubusercontent.com/thangbuiq/covid19-etl-pipeline/main/covid-19-dataset"
BASE_URL_VARIABLE = "COVID_DATA_BASE_URL"

_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class DatasetFile:
    name: str
    """File name in the local data directory."""
    upstream_name: str
    """File name under the upstream base URL."""
    sha256: str

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.upstream_name}"


#: The published files and their checksums (shared/data/README.md).
DATASET_FILES: tuple[DatasetFile, ...] = (
    DatasetFile(
        "covid19_cases_position.csv",
        "covid19_cases_position.csv",
        "e20704fc99c0bfb4f3ac6e1f287d4a879bafdb5316d0cc957a316eedd0d1747d",
    ),
    DatasetFile(
        "covid19_country_wise.csv",
        "covid19_country_wise.csv",
        "d448b9fafe296674dc205f52338c127d5803a27def8afaa257e9f996fe9e9a9b",
    ),
    DatasetFile(
        "covid19_time_series.csv",
        "covid19_time_series.csv",
        "8c374f20a83a2dec8587113bba1576507a2443ba5f7f33d3266c24e00ae4ea82",
    ),
    DatasetFile(
        "covid19_worldometer.csv",
        "covid19_worldometer_data.csv",
        "4c545507330324ec92e2003bbf04de883a4f62fe7537b9bf04c4dec2a00615f3",
    ),
)


@dataclass(frozen=True)
class Vintage:
    """One accepted content of a file (a line of ``vintages.jsonl``); ``fetched_at`` in UTC, ISO 8601."""

    file: str
    sha256: str
    previous_sha256: str | None
    fetched_at: str
    url: str
    bytes: int


class FetchError(Exception):
    """A dataset file could not be downloaded and verified; nothing unverified was left in place."""

    def __init__(self, file_name: str, url: str, reason: str) -> None:
        super().__init__(f"{file_name}: download from {url} failed: {reason}")
        self.file_name = file_name
        self.url = url
        self.reason = reason


class _TransientError(Exception):
    """A failure worth retrying; its message is the reason."""


def default_base_url() -> str:
    """``$COVID_DATA_BASE_URL`` (e.g. a mirror or a local test server), else the upstream URL."""
    from etl_pipeline.settings import Settings

    return Settings.from_env().covid_data_base_url or UPSTREAM_BASE_URL


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_valid(path: Path, expected_sha256: str) -> bool:
    return path.is_file() and sha256_of(path) == expected_sha256


def missing_or_invalid(data_dir: Path) -> list[str]:
    """Local names of the dataset files in ``data_dir`` that are absent or fail their checksum."""
    return [f.name for f in DATASET_FILES if not _is_valid(data_dir / f.name, f.sha256)]


def fetch_data(
    dest: Path,
    *,
    base_url: str = UPSTREAM_BASE_URL,
    retries: int = 3,
    backoff_s: float = 1.0,
    progress: bool = True,
    timeout_s: float = 30,
    follow: bool = False,
) -> list[Path]:
    """Make ``dest`` hold every dataset file, verified; return the paths that were downloaded.

    Files already present with the right checksum are skipped (and not returned). A present file with
    a wrong checksum is deleted and downloaded again, unless it is a vintage accepted by ``follow`` (a
    :class:`FetchError` says so and the file stays). Each file gets ``1 + retries`` attempts at
    most, waiting ``backoff_s * 2**n`` seconds before retry ``n + 1``. Stops at the first file that
    fails, raising :class:`FetchError`; files verified before it stay in place.

    ``follow``: every file is downloaded and whatever the upstream now serves is accepted; the paths returned are
    those that got a new vintage (see the module docstring and :func:`vintages`). A file whose download fails
    stays as it was, its vintages too.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    dest.mkdir(parents=True, exist_ok=True)
    downloaded = []
    accepted = {vintage.sha256 for vintage in vintages(dest)}
    with requests.Session() as session:
        for file in DATASET_FILES:
            target = dest / file.name
            if follow:
                incoming = dest / f".{file.name}.incoming"
                try:
                    sha256 = _fetch_with_retries(session, file, incoming, base_url, retries, backoff_s, progress,
                                                 timeout_s, expected=None)
                    if _accept(dest, file, incoming, sha256, file.url(base_url)):
                        downloaded.append(target)
                finally:
                    incoming.unlink(missing_ok=True)
                continue
            if target.exists():
                present = sha256_of(target)
                if present == file.sha256:
                    continue
                if present in accepted:  # never replace a vintage without a trace
                    raise FetchError(file.name, file.url(base_url), f"{target} holds the vintage {present} accepted "
                                     "by --follow, not the published file; use --follow, or move the file away")
                target.unlink()
            _fetch_with_retries(session, file, target, base_url, retries, backoff_s, progress, timeout_s,
                                expected=file.sha256)
            downloaded.append(target)
    return downloaded


def vintages(dest: Path) -> list[Vintage]:
    """Every vintage accepted into ``dest`` by ``fetch_data(follow=True)``, oldest first (``vintages.jsonl``)."""
    log = dest / "vintages.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [Vintage(**json.loads(line)) for line in lines]


def _accept(dest: Path, file: DatasetFile, incoming: Path, sha256: str, url: str) -> Vintage | None:
    """Put ``incoming`` in place of ``dest/file.name`` unless it holds the same bytes; the previous file is first
    copied under ``vintages/`` and the new vintage appended to ``vintages.jsonl``."""
    target = dest / file.name
    previous = sha256_of(target) if target.exists() else None
    if previous == sha256:
        return None
    if previous is not None:
        kept = dest / "vintages" / Path(file.name).stem / f"{previous}{Path(file.name).suffix}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        if not kept.exists():
            shutil.copy2(target, kept)
    vintage = Vintage(file.name, sha256, previous, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      url, incoming.stat().st_size)
    os.replace(incoming, target)
    with (dest / "vintages.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps(asdict(vintage)) + "\n")
        log.flush()
        os.fsync(log.fileno())
    return vintage


def _fetch_with_retries(
    session: requests.Session,
    file: DatasetFile,
    target: Path,
    base_url: str,
    retries: int,
    backoff_s: float,
    progress: bool,
    timeout_s: float,
    *,
    expected: str | None,
) -> str:
    """Download ``file`` to ``target`` (checked against ``expected`` unless None); returns its sha256."""
    url = file.url(base_url)
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            return _download_verified(session, file, url, target, progress, timeout_s, expected)
        except _TransientError as exc:
            reason = str(exc)
    raise FetchError(file.name, url, f"{reason} (gave up after {retries + 1} attempts)")


def _download_verified(
    session: requests.Session, file: DatasetFile, url: str, target: Path, progress: bool, timeout_s: float,
    expected: str | None,
) -> str:
    """One attempt: stream ``url`` into a temporary file beside ``target``, check it against ``expected`` (unless
    None), rename it into place; returns its sha256."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _stream(session, file, url, out, progress, timeout_s)
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and actual != expected:
            raise FetchError(file.name, url, f"checksum mismatch: expected sha256 {expected}, got {actual}")
        os.replace(tmp, target)
        return actual
    finally:
        tmp.unlink(missing_ok=True)


def _stream(
    session: requests.Session, file: DatasetFile, url: str, out: BinaryIO, progress: bool, timeout_s: float
) -> str:
    """Write the body of ``url`` to ``out``; return its sha256. Raises _TransientError or FetchError."""
    digest = hashlib.sha256()
    try:
        # ask for the bytes as published (no gzip): then Content-Length is the size of the file
        with session.get(url, stream=True, timeout=timeout_s, headers={"Accept-Encoding": "identity"}) as response:
            status = response.status_code
            if status == 429 or status >= 500:
                raise _TransientError(f"HTTP {status} {response.reason}")
            if status != 200:
                raise FetchError(file.name, url, f"HTTP {status} {response.reason}")
            total = int(response.headers.get("Content-Length", 0)) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=file.name, disable=not progress) as bar:
                for chunk in response.iter_content(_CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(response.raw.tell() - bar.n)
            # urllib3 1.x does not notice a connection closed early; a short body is worth another try
            if total is not None and response.raw.tell() != total:
                raise _TransientError(f"connection closed after {response.raw.tell()} of {total} bytes")
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise _TransientError(f"{type(exc).__name__}: {exc}") from exc
    except requests.RequestException as exc:  # e.g. a malformed URL: retrying cannot help
        raise FetchError(file.name, url, f"{type(exc).__name__}: {exc}") from exc
    return digest.hexdigest()
