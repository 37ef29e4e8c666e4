#!/usr/bin/env bash
# Mutation testing of phaselog's decision code with mutmut 3 (see docs/mutation.md).
#
# mutmut derives module names from file paths, and phaselog's packages live in
# top-level folders (domain/ is phaselog.domain), so the run happens in a staged
# copy laid out as phaselog/<package>/: nothing in the working tree is mutated.
# What is mutated and which tests run per mutant is [tool.mutmut] in pyproject.toml.
#
#   tools/mutation.sh            # stage the working tree, run every mutant, list the survivors
#   tools/mutation.sh FILE...    # only mutants of these files, e.g. domain/plan.py
#   MUTATION_DIR=/path tools/mutation.sh   # where to stage (default: /tmp/phaselog-mutation)
#   MUTATION_REV=HEAD tools/mutation.sh    # stage a commit instead of the working tree
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${MUTATION_DIR:-/tmp/phaselog-mutation}
rm -rf "$work"
mkdir -p "$work/phaselog"
if [[ -n ${MUTATION_REV:-} ]]; then  # a commit instead of the working tree (e.g. HEAD)
    git -C "$root" archive "$MUTATION_REV" domain runtime projections adapters tests pyproject.toml \
        | tar -x -C "$work"
else
    for path in domain runtime projections adapters tests pyproject.toml; do
        cp -r "$root/$path" "$work/$path"
    done
fi
for package in domain runtime projections adapters; do
    mv "$work/$package" "$work/phaselog/$package"
done
find "$work" -name __pycache__ -prune -exec rm -rf {} +
cd "$work"

names=()
for file in "$@"; do  # domain/plan.py -> phaselog.domain.plan* (mutmut's mutant names)
    module=${file%.py}
    names+=("phaselog.${module//\//.}*")
done

# Only the in-memory store runs here, so deadlines and waits can be short (a mutant that breaks a
# task's flow then fails its test in 3 s instead of 15 s).
export PHASELOG_TEST_PLAN_LIMIT=${PHASELOG_TEST_PLAN_LIMIT:-0.4}
export PHASELOG_TEST_WAIT=${PHASELOG_TEST_WAIT:-3}
status=0
mutmut run "${names[@]}" || status=$?
mutmut results --all true > results.txt || true
echo "mutants by outcome (every one listed in $work/results.txt):"
awk -F': ' 'NF > 1 {print $NF}' results.txt | sort | uniq -c
echo "survivors: $(grep -c ': survived$' results.txt || true)"
echo "inspect one with: cd $work && mutmut show <name>"
exit "$status"
