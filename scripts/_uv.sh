# Sourced by the scripts here: makes sure `uv` is on PATH (installing it from PyPI if absent)
# and the project's locked environment is in place.
ensure_uv() {
  if ! command -v uv >/dev/null 2>&1; then
    echo "uv not found: installing it from PyPI" >&2
    python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
    PATH="$(python3 -m site --user-base)/bin:$PATH"
    export PATH
  fi
  uv --version >&2
}

sync_env() {
  ensure_uv
  # Bytecode compiled once at install: where PYTHONDONTWRITEBYTECODE is set (these machines set it),
  # every Airflow process and every task start-up would otherwise compile its imports from source.
  uv sync --locked --quiet --compile-bytecode
}
