"""``silent report``, ``silent export`` and ``silent evaluate``: thin click commands over experiments."""
from __future__ import annotations

import json
import sys

import click
from tqdm import tqdm

from experiments.errors import ServiceError
from web.cli.common import ARCHIVE_OPTION, DB_OPTION, fail, open_archive, open_store

FROM_OPTION = click.option("--from", "start", default=None,
                           help="Only decisions made at or after this time (ISO 8601 UTC or epoch seconds).")
TO_OPTION = click.option("--to", "end", default=None, help="Only decisions made before this time.")


def _store(db: str):
    return open_store(db)


class _Progress:
    """A tqdm bar driven by (done, total) callbacks; quiet when stderr is not a terminal."""

    def __init__(self, desc: str):
        self.bar = tqdm(desc=desc, unit=" decisions", disable=None, file=sys.stderr)

    def __call__(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


@click.command("report")
@click.argument("key")
@DB_OPTION
@ARCHIVE_OPTION
@FROM_OPTION
@TO_OPTION
@click.option("--interval", type=click.Choice(["auto", "hour", "day"]), default="auto", show_default=True,
              help="Time-series bucket; auto picks minutes to days from the range, at most 100 buckets.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.File("w"), default="-", help="Write here instead of standard output.")
def report(key, db, archive_dir, start, end, interval, fmt, output):
    """Report an experiment: variants, lift, sample ratio, off-policy estimates, time series.

    text is a readable table, json the API's report, html a standalone page with charts.

    Example: silent report home-recs --format html -o report.html
    """
    from experiments.reporting.reports import report as build
    from web.dashboard import report_render

    store = _store(db)
    try:
        result = build(store, key, start, end, interval, archive=open_archive(store, db, archive_dir))
    except ServiceError as exc:
        fail(exc)
    if fmt == "json":
        output.write(json.dumps(result, indent=2) + "\n")
    else:
        output.write(report_render.text(result) if fmt == "text" else report_render.html(result))


@click.command("export")
@click.argument("key")
@DB_OPTION
@ARCHIVE_OPTION
@FROM_OPTION
@TO_OPTION
@click.option("--format", "fmt", type=click.Choice(["csv", "dsjson", "parquet"]), required=True,
              help="csv: decisions joined with their rewards; dsjson: VW's Decision Service JSON log; "
                   "parquet: the archive's columns (docs/reports.md).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Write here instead of standard output (parquet needs a file).")
def export(key, db, archive_dir, start, end, fmt, output):
    """Export the decision log with rewards as CSV, as DSJSON for VW's own tools, or as Parquet.

    The DSJSON file is read by vw --dsjson --cb_explore_adf (--ccb_explore_adf for slates);
    the Parquet file by DuckDB, pandas or Spark.

    Example: silent export home-recs --format dsjson -o home-recs.json
    """
    from experiments.reporting.exports import export as write

    if fmt == "parquet" and output == "-":
        raise click.UsageError("--format parquet writes a file: give --output FILE")
    store = _store(db)
    progress = _Progress(f"export {key}")
    try:
        with click.open_file(output, "wb" if fmt == "parquet" else "w", atomic=output != "-") as out:
            count = write(store, key, fmt, out, start, end, progress=progress,
                          archive=open_archive(store, db, archive_dir))
    except ServiceError as exc:
        fail(exc)
    finally:
        progress.close()
    if output != "-":
        click.echo(f"wrote {count:,} decisions to {output}", err=True)


@click.command("evaluate")
@click.argument("key")
@click.option("--spec", "spec_file", type=click.File("r"), required=True,
              help='JSON with the settings to try: {"exploration": {...}, "learning": {...}, "limit": N}.')
@DB_OPTION
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def evaluate(key, spec_file, db, fmt):
    """Replay the log through other exploration or learning settings and compare them with the live ones.

    Example: silent evaluate home-recs --spec squarecb.json
    """
    from experiments.reporting.evaluation import Evaluations
    from web.dashboard import report_render

    try:
        body = json.load(spec_file)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{spec_file.name}: not valid JSON ({exc})")
    runner = Evaluations(_store(db))
    progress = _Progress(f"replay {key}")
    try:
        view = runner.run(runner.create(key, body)["id"], progress=progress)
    except ServiceError as exc:
        fail(exc)
    finally:
        progress.close()
    if view["status"] != "done":
        raise click.ClickException(f"evaluation {view['id']} failed: {view['error']}")
    click.echo(json.dumps(view, indent=2) if fmt == "json" else report_render.evaluation_text(view))
