# Silent Customizer: `silent serve` (gunicorn workers + one learner) on a SQLite database in the /data volume.
#   docker build -t silent-customizer .
#   docker run --rm -v silent-data:/data silent-customizer keys create --role admin --db /data/silent.db
#   docker run -d --init -p 127.0.0.1:8000:8000 -v silent-data:/data silent-customizer
# See docs/deploy.md (keys first: with no key the API would be open, so serve refuses to listen on 0.0.0.0).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY setup.py README.md ./
COPY bandit bandit
COPY experiments experiments
COPY web web
RUN pip install . && rm -rf /src

# A user without a login or a home of its own; the database, its WAL, lock and archive live in /data.
RUN useradd --system --uid 10001 --no-create-home --home-dir /data --shell /usr/sbin/nologin silent \
    && mkdir /data && chown silent:silent /data
USER silent
WORKDIR /data
VOLUME /data

EXPOSE 8000
# SIGTERM (docker stop) drains accepted connections, then the learner publishes: give it time.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"

ENTRYPOINT ["silent"]
CMD ["serve", "--db", "/data/silent.db", "--host", "0.0.0.0", "--port", "8000"]
