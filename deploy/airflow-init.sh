#!/usr/bin/env bash
# The one-shot init step of docker-compose.yaml (service airflow-init), run before any other Airflow
# process starts: migrate the metadata database, give the admin user its password, and create the
# folders holdcast writes to on the shared data volume. Safe to run again: each step is idempotent.
set -euo pipefail

: "${AIRFLOW_ADMIN_USER:?set AIRFLOW_ADMIN_USER in .env}"
: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}"

airflow db migrate

# Airflow 3's simple auth manager reads users from [core] simple_auth_manager_users and their passwords
# from this file; writing it here keeps the password in .env only, never in the image or the compose file.
passwords_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"
mkdir -p "$(dirname "$passwords_file")"
python - "$passwords_file" <<'PY'
import json
import os
import sys

with open(sys.argv[1], "w") as out:
    json.dump({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, out)
PY
chmod 600 "$passwords_file"

mkdir -p "${HOLDCAST_HOME:?}"
echo "airflow-init: metadata migrated, admin user ${AIRFLOW_ADMIN_USER} ready, data under ${HOLDCAST_HOME}"
