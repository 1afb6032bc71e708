#!/usr/bin/env bash
# Mutation testing with mutmut 2.5.1 (`make mutation`, not part of CI: it takes minutes).
# mutmut rewrites the source file in place for every mutant, so it runs on a copy of the work
# tree: tests running meanwhile in the checkout never see a mutant.
# Usage: hack/mutation.sh [module...]   modules: image_edit status (default: both)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
[[ -x $venv/bin/mutmut ]] || "$venv/bin/python" -m pip install --quiet --disable-pip-version-check mutmut==2.5.1

# module -> "source file|tests that should kill its mutants"
declare -A TARGETS=(
  [image_edit]="steps/druppie_steps/gitops/image_edit.py|tests/unit/test_image_edit.py tests/unit/test_image_edit_properties.py"
  [status]="steps/druppie_steps/flux/status.py|tests/unit/test_flux_status.py"
)
modules=("$@")
[[ ${#modules[@]} -gt 0 ]] || modules=(image_edit status)

for module in "${modules[@]}"; do
  [[ -n ${TARGETS[$module]:-} ]] || { echo "mutation: unknown module '$module' (${!TARGETS[*]})" >&2; exit 2; }
  IFS='|' read -r source tests <<<"${TARGETS[$module]}"
  copy=$(mktemp -d "${TMPDIR:-/tmp}/druppie-mutation.XXXXXX")
  # The tracked and new files of the work tree, without .venv and caches.
  (cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$copy")
  echo "== mutation: $source (tests: $tests)"
  (cd "$copy" && PYTHONPATH="$copy/steps" "$venv/bin/mutmut" run --paths-to-mutate "$source" \
      --runner "$venv/bin/python -m pytest -x -q -p no:cacheprovider $tests" --tests-dir tests >/dev/null 2>&1 || true)
  (cd "$copy" && "$venv/bin/mutmut" results > results.txt 2>&1 || true)
  total=$(cd "$copy" && "$venv/bin/python" - <<'EOF'
import sqlite3
db = sqlite3.connect(".mutmut-cache")
rows = dict(db.execute("select status, count(*) from Mutant group by status").fetchall())
killed = rows.get("ok_killed", 0)
total = sum(rows.values())
print(f"killed {killed} of {total} ({100 * killed / max(total, 1):.1f}%); by status: {rows}")
EOF
)
  echo "   $total"
  sed -n '/Survived/,$p' "$copy/results.txt" | head -40
  echo "   survivors: (cd $copy && $venv/bin/mutmut show <id>)"
done
