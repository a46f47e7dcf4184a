# The official Apache Airflow image with this provider installed (used by docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml README.md /opt/echo360/
COPY --chown=airflow:root airflow_provider_echo360 /opt/echo360/airflow_provider_echo360
RUN pip install --no-cache-dir "/opt/echo360"
