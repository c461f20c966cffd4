"""Settings are data: one table of (name, default, help), type-checked against the default."""
from __future__ import annotations

SETTINGS = [
    ("DATABASE", "silent.db", "A SQLite database file, or a postgresql:// URL (docs/production.md)."),
    ("MAX_BODY_BYTES", 1_048_576, "Largest request body accepted; larger ones get 413."),
    ("MAX_MODEL_BYTES", 67_108_864, "Largest model file PUT /personalizer/model accepts; larger ones get 413."),
    ("MAX_REQUEST_FEATURES", 10_000, "Most features one slate or rank request may carry: context, candidates (an "
                                     "id counts as one) and slots together; more get 413 (docs/security.md)."),
    ("MAX_REQUEST_WORK", 2_000_000, "Most feature evaluations Vowpal Wabbit may spend picking one slate: features "
                                    "and their crossings x candidates x slots; more get 413 (docs/security.md)."),
    ("MAX_REWARDS_PER_EVENT", 1_000, "Most distinct rewards one event keeps; more get 409 (docs/security.md)."),
    ("MODEL_REFRESH_SECONDS", 1.0, "How often serving checks for a newer model snapshot."),
    ("SPEC_REFRESH_SECONDS", 1.0, "How often serving checks for changed experiment settings."),
    ("LEARNER_THREAD", False, "Run the learner in a background thread of this process."),
    ("LEARNER_INTERVAL_SECONDS", 0.5, "Pause between two learner passes."),
    ("LEARNER_GRACE_SECONDS", 1.0, "Extra wait after a reward window closes, for rewards still in flight."),
    ("CLOCK", None, "A clock object with now(); tests and simulations pass a virtual clock."),
    ("WAL_AUTOCHECKPOINT", 1000, "WAL pages before a committing request checkpoints; silent serve sets 0 in "
                                 "workers and lets the learner process checkpoint, off the request path."),
    ("WAL_LIMIT_MB", 32, "Past this size the learner process makes the write-ahead log start over, holding the "
                         "write lock for about one fsync."),
    ("MODEL_CACHE_MB", 128, "Memory each process (every worker, the learner) may spend on experiments' models; "
                            "past it the least recently used are dropped and reloaded from their snapshot."),
    ("MODEL_IDLE_SECONDS", 300.0, "A model not used for this long is dropped from memory until it is needed again."),
    ("LEARNER_LEASE_SECONDS", 30.0, "How long the learner lease lasts without renewal; a learner on this machine "
                                    "that died is replaced at once, one elsewhere after this long."),
    ("SECRET_KEY", "", "Signs dashboard session cookies; empty means one generated and kept in the database, "
                       "so every worker shares it."),
    ("ARCHIVE_DIR", "", "Folder of the Parquet archive of learned decisions that reports read; empty: beside the "
                        "database file (shop.db -> shop-archive), none for a PostgreSQL URL; 'off': no archive."),
    ("ARCHIVE_AFTER_SECONDS", 600.0, "Archive decisions once the oldest waiting one's reward window closed this "
                                     "long ago (or ARCHIVE_BATCH_ROWS wait), so files stay few and large."),
    ("ARCHIVE_BATCH_ROWS", 200_000, "Most decisions the learner archives in one go (one file per day touched)."),
    ("ARCHIVE_RETENTION_DAYS", 0.0, "Delete archived days older than this many days; 0 keeps them forever."),
    ("SECURE_COOKIES", False, "Send the dashboard session cookie over HTTPS only; turn on behind TLS."),
    ("SESSION_IDLE_MINUTES", 30.0, "A dashboard session unused this long is over; sign in again."),
    ("SIGN_IN_LIMIT_PER_USER", 5, "Failed sign-ins per user name within the window before a 429."),
    ("SIGN_IN_LIMIT_PER_ADDRESS", 20, "Failed sign-ins per client address within the window before a 429."),
    ("SIGN_IN_WINDOW_SECONDS", 900.0, "How long a failed sign-in counts against its user name and address."),
    ("SIGN_IN_SLOTS", 1, "Password checks at once across all workers; more sign-ins at the same moment get a "
                         "503, so a flood never holds the workers slate requests need."),
    ("TRUSTED_PROXIES", 0, "Reverse proxies in front of the server whose X-Forwarded-For and -Proto to trust "
                           "(client addresses for sign-in limits and /metrics)."),
    ("PUBLIC_RATE_PER_SECOND", 10.0, "Calls a second one client address may make with a public key (a token "
                                      "bucket shared by all workers); more get 429 with Retry-After."),
    ("PUBLIC_RATE_BURST", 100.0, "Calls one client address may make with a public key in a burst, before "
                                 "PUBLIC_RATE_PER_SECOND applies."),
    ("PUBLIC_RATE_FILE", "", "File of the public keys' rate buckets, shared by the workers that open it; empty: "
                             "beside the SQLite database, and on PostgreSQL in the database, shared by every host."),
    ("PUBLIC_PREFLIGHT_MAX_AGE", 600, "Seconds a browser may cache the answer to a public route's CORS preflight."),
    ("METRICS_OPEN_TO", "", "Comma-separated client addresses that may read /metrics without a key once API "
                            "keys exist (say, the Prometheus host); others need an ops or admin key."),
]
DEFAULTS = {name: default for name, default, _ in SETTINGS}
MB = 1024 * 1024
ENV_PREFIX = "SILENT_"


class SettingsError(ValueError):
    """A setting with an unknown name or a value of the wrong type."""


def _coerce(name: str, value, default):
    if default is None or isinstance(value, type(default)) and not (
        isinstance(value, bool) and not isinstance(default, bool)
    ):
        return value
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
    elif isinstance(default, (int, float)) and not isinstance(value, bool):
        try:
            number = type(default)(value)
        except (TypeError, ValueError):
            pass
        else:
            return number
    elif isinstance(default, str) and not isinstance(value, bool):
        return str(value)
    raise SettingsError(f"{name}: expected {type(default).__name__}, got {value!r}")


def resolve_settings(config: dict, environ: dict) -> dict:
    """Merge defaults, ``SILENT_*`` environment variables and ``config`` (strongest)."""
    settings = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        if ENV_PREFIX + name in environ:
            settings[name] = _coerce(name, environ[ENV_PREFIX + name], default)
    for name, value in config.items():
        if name not in DEFAULTS:
            raise SettingsError(f"{name}: unknown setting; known: {', '.join(DEFAULTS)}")
        settings[name] = _coerce(name, value, DEFAULTS[name])
    return settings


def archive_from(store, settings: dict):
    """The Parquet archive the settings describe (``experiments.reporting.archive.Archive``), or None."""
    from experiments.reporting.archive import open_archive

    return open_archive(store, settings["DATABASE"], settings["ARCHIVE_DIR"],
                        batch_rows=settings["ARCHIVE_BATCH_ROWS"], after_seconds=settings["ARCHIVE_AFTER_SECONDS"],
                        retention_days=settings["ARCHIVE_RETENTION_DAYS"])


def learner_memory(settings: dict) -> dict:
    """The learner's memory bounds, as ``Learner`` keyword arguments."""
    return {"budget_bytes": settings["MODEL_CACHE_MB"] * MB, "idle_seconds": settings["MODEL_IDLE_SECONDS"]}
