# Sourced by the other scripts: make .venv with remedy installed (EXTRAS picks extras).
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.installed-${EXTRAS:-base}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/pip" install --quiet --upgrade pip
  if [ -n "${EXTRAS:-}" ]; then
    "$venv/bin/pip" install --quiet -e "$root[$EXTRAS]"
  else
    "$venv/bin/pip" install --quiet -e "$root"
  fi
  touch "$stamp"
fi
