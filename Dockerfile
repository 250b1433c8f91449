# The holdcast image: Airflow 3 with the CeleryExecutor, the project and its DAGs, and the MLflow server.
# One image for every Airflow role in docker-compose.yaml and for the MLflow tracking server, so the
# server and the clients run the same pinned MLflow.
#
# It installs exactly what `make test` installs locally: the same Python minor version, the same
# constraints.txt lock, the same editable project, without the dev tools (tests/deploy/test_compose.py
# checks both stay in step).
FROM python:3.11.7-slim-bookworm

# libgomp1: LightGBM's OpenMP runtime; tini: a PID 1 that forwards signals so workers shut down warm.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgomp1 tini \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow \
    HOLDCAST_HOME=/data/holdcast

# Airflow's usual unprivileged user; the folders named volumes mount on are created here so the
# volumes start out owned by it.
RUN useradd --create-home --uid 50000 --gid 0 airflow \
    && mkdir -p /opt/holdcast /opt/airflow/logs /opt/airflow/auth /data/holdcast /mlartifacts \
    && chown -R airflow:0 /opt/holdcast /opt/airflow /data/holdcast /mlartifacts

WORKDIR /opt/holdcast

# Dependencies first (the slow layer), from the lock alone; the project's own code comes after.
COPY --chown=airflow:0 pyproject.toml constraints.txt README.md ./
COPY --chown=airflow:0 include ./include
COPY --chown=airflow:0 features ./features
COPY --chown=airflow:0 training ./training
RUN pip install --upgrade pip \
    && pip install -c constraints.txt -e ".[celery]"

COPY --chown=airflow:0 dags ./dags
COPY --chown=airflow:0 plugins ./plugins
COPY --chown=airflow:0 deploy ./deploy

USER airflow
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["airflow", "version"]
