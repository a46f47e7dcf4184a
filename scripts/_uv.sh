# Sourced by the scripts here: makes sure `uv` is on PATH and the project's locked environment is in
# place. Where uv is missing, scripts/bootstrap_uv.py fetches it from PyPI into .tools/bin/ with
# Python's standard library alone: no pip, no venv, nothing installed into any Python (PEP 668).
ensure_uv() {
  local root tools
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  tools="$root/.tools/bin"
  if ! command -v uv >/dev/null 2>&1; then
    if [ ! -x "$tools/uv" ]; then
      command -v python3 >/dev/null 2>&1 || {
        echo "python3 not found: install Python 3.11 or later (Debian/Ubuntu: apt install python3)" >&2
        return 1
      }
      echo "uv not found: fetching it into $tools" >&2
      python3 "$root/scripts/bootstrap_uv.py" >/dev/null || return 1
    fi
    PATH="$tools:$PATH"
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

# The browser test drives Debian's chromium with Playwright (which cannot download its own browsers
# here): installed from Debian's packages where missing, as root or through sudo.
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return
  echo "chromium not found: installing Debian's chromium package for the browser test" >&2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "cannot install chromium: not root and no sudo; run: apt-get install chromium" >&2
      return 1
    }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
}
