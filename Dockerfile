# The official Apache Airflow image with this provider installed (used by docker-compose.yaml), and
# the Echo360 sandbox (its own distribution, sandbox/), which the compose `sandbox` service runs.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml README.md LICENSE /opt/echo360/
COPY --chown=airflow:root airflow_provider_echo360 /opt/echo360/airflow_provider_echo360
COPY --chown=airflow:root sandbox/pyproject.toml sandbox/README.md /opt/echo360/sandbox/
COPY --chown=airflow:root sandbox/src /opt/echo360/sandbox/src
# Airflow pinned to the image's own version (AIRFLOW_VERSION, set by the image), as Airflow's docs ask:
# otherwise pip may move it to satisfy a dependency.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/echo360" "/opt/echo360/sandbox"
