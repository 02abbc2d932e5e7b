"""The ``covid-etl`` command (README.md "Commands")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from etl_pipeline.settings import Settings


def _fetch_data(args: argparse.Namespace, settings: Settings) -> int:
    from etl_pipeline.fetch import default_base_url, fetch_data, vintages

    dest = args.dest or settings.covid_data_dir
    fetched = fetch_data(dest, base_url=default_base_url(), follow=args.follow)
    if not args.follow:
        print(f"{len(fetched)} file(s) downloaded to {dest}; all four verified")
        return 0
    accepted = vintages(dest)[-len(fetched):] if fetched else []
    for v in accepted:
        kept = f"; the previous one ({v.previous_sha256[:12]}) kept under {dest / 'vintages'}" if v.previous_sha256 \
            else " (its first vintage here)"
        print(f"{v.file}: new vintage sha256 {v.sha256[:12]} ({v.bytes:,} bytes){kept}")
    if accepted:
        print(f"{len(accepted)} new vintage(s), recorded in {dest / 'vintages.jsonl'}")
    else:
        print(f"nothing changed upstream: {dest} holds what the upstream serves")
    return 0


def _seed(args: argparse.Namespace, settings: Settings) -> int:
    from etl_pipeline.core.engines import describe_url
    from etl_pipeline.seed import seed_source

    if args.data_dir and not args.data_dir.is_dir():
        raise FileNotFoundError(f"--data-dir {args.data_dir}: no such directory")
    data_dir = args.data_dir or settings.covid_data_dir
    counts = seed_source(settings.source_db_url, data_dir)
    print(f"seeded {describe_url(settings.source_db_url)} from {data_dir}:")
    for table, rows in counts.items():
        print(f"  {table:<26}{rows:>10,} rows")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from etl_pipeline.run import run_pipeline

    summary = run_pipeline(settings, args.data_dir, download=args.download or args.data_dir is None,
                           verbose=args.verbose, full_refresh=args.full_refresh)
    print(summary.format())
    return 0 if summary.success else 1


def _fetch_jars(args: argparse.Namespace, settings: Settings) -> int:
    from etl_pipeline.spark_jars import fetch_report

    print(fetch_report(args.ivy or settings.spark_jars_ivy))
    return 0


def _lake(args: argparse.Namespace, settings: Settings) -> int:
    from etl_pipeline import lake_admin

    if args.lake_command == "history":
        print(lake_admin.format_history(settings, args.table))
    else:
        new = lake_admin.restore(settings, args.table, args.version)
        print(f"{args.table}: version {args.version} restored as version {new}")
    return 0


def _dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from dashboard.app import serve

    serve(host=args.host, port=args.port, warehouse_url=settings.warehouse_db_url)
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from etl_pipeline.bench.runner import BenchOptions, run_bench
    from etl_pipeline.run import ensure_data

    data_dir = args.data_dir or settings.covid_data_dir
    ensure_data(data_dir, download=args.data_dir is None)
    results = run_bench(BenchOptions(
        data_dir=data_dir, quick=args.quick, repeat=args.repeat, only=tuple(args.only or ()),
        source_db_url=settings.source_db_url, warehouse_db_url=settings.warehouse_db_url, json_path=args.json,
    ))
    # The targets are set for the real dataset: a quick run reports them but does not fail on them.
    return 0 if args.quick or all(r.met is not False for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="covid-etl", description="COVID-19 medallion ETL platform")
    commands = parser.add_subparsers(dest="command", required=True)

    fetch = commands.add_parser("fetch-data", help="download the four CSV files and verify their sha256")
    fetch.add_argument("--dest", type=Path, help="directory to write to (default: $COVID_DATA_DIR)")
    fetch.add_argument("--follow", action="store_true",
                       help="accept a changed upstream content as a new vintage (the previous file is kept under "
                       "vintages/, every vintage logged in vintages.jsonl) instead of requiring the published sha256")
    fetch.set_defaults(handler=_fetch_data)

    seed = commands.add_parser("seed", help="validate the CSV files and load them into the source database")
    seed.add_argument("--data-dir", type=Path, help="directory holding the CSV files (default: $COVID_DATA_DIR)")
    seed.set_defaults(handler=_seed)

    run = commands.add_parser("run", help="seed if needed, observe the sources, materialize what is stale, print a summary")
    run.add_argument("--data-dir", type=Path, help="directory holding the CSV files (default: $COVID_DATA_DIR, "
                     "where missing files are downloaded); a named directory must exist and hold them")
    run.add_argument("--download", action="store_true",
                     help="download missing files into --data-dir too (it is created if needed)")
    run.add_argument("--verbose", action="store_true", help="Dagster's step logs and tracebacks on stderr")
    run.add_argument("--full-refresh", action="store_true",
                     help="materialize every asset, stale or not (default: only what a changed source table or a "
                     "failed run left stale)")
    run.set_defaults(handler=_run)

    bench = commands.add_parser("bench", help="measure the pipeline against the original methods and a pandas floor")
    bench.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    bench.add_argument("--quick", action="store_true", help="a tiny dataset and no scale runs (for CI)")
    bench.add_argument("--data-dir", type=Path, help="directory holding the CSV files (default: $COVID_DATA_DIR)")
    bench.add_argument("--repeat", type=int, default=3, help="repetitions of each measurement (default: 3)")
    bench.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks (default: all)")
    bench.set_defaults(handler=_bench)

    jars = commands.add_parser("fetch-jars", help="resolve the JVM jars Spark needs (Delta Lake, S3A connector) into their cache")
    jars.add_argument("--ivy", type=Path, help="Ivy cache directory (default: $SPARK_JARS_IVY, else "
                      "~/.cache/covid-etl/ivy)")
    jars.set_defaults(handler=_fetch_jars)

    lake = commands.add_parser("lake", help="a lake table's Delta history; restore an earlier version")
    lake_commands = lake.add_subparsers(dest="lake_command", required=True)
    history = lake_commands.add_parser("history", help="list the versions of <layer>.<table>")
    history.add_argument("table", metavar="<layer>.<table>", help="e.g. silver.covid19_time_series")
    restore = lake_commands.add_parser("restore", help="make an earlier version current again (a new commit)")
    restore.add_argument("table", metavar="<layer>.<table>")
    restore.add_argument("--version", type=int, required=True, help="the version to restore")
    lake.set_defaults(handler=_lake)

    dashboard = commands.add_parser("dashboard", help="serve the Dash app over the warehouse")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8050, help="port (default: 8050)")
    dashboard.set_defaults(handler=_dashboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        return args.handler(args, settings)
    except Exception as exc:  # noqa: BLE001 - every known failure has a clear message; show it, not a traceback
        import traceback

        from etl_pipeline.core.redaction import redact

        if getattr(args, "verbose", False):
            print(redact("".join(traceback.format_exception(exc))), file=sys.stderr)
        print(f"covid-etl {args.command}: error: {redact(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
