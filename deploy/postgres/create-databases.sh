#!/usr/bin/env bash
# Runs once, when the PostgreSQL volume is first initialised (/docker-entrypoint-initdb.d): one server,
# one database per user of it, so Airflow's metadata, holdcast's warehouse and MLflow's store never
# share tables. The names come from the environment docker-compose.yaml passes (see .env.example).
set -euo pipefail

for name in "${AIRFLOW_DB:?}" "${HOLDCAST_WAREHOUSE_DB:?}" "${MLFLOW_DB:?}"; do
    if [[ ! "$name" =~ ^[a-z_][a-z0-9_]*$ ]]; then
        echo "database name '$name' must be lower-case letters, digits and underscores" >&2
        exit 1
    fi
    exists=$(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$name'")
    if [[ "$exists" != "1" ]]; then
        echo "creating database $name"
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -c "CREATE DATABASE \"$name\""
    fi
done
