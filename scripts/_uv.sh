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
