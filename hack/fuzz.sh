#!/usr/bin/env bash
# Runs every go fuzz target (func FuzzXxx in a _test.go file) for the time
# given (Go duration, e.g. 10s or 10m), one after the other, and prints a
# summary: target, executions, new inputs found. A failure stops the run;
# its input is in the package's testdata/fuzz/FuzzXxx/ and belongs in git
# once the bug is fixed.
#   hack/fuzz.sh 10s        # what make test runs
#   hack/fuzz.sh 10m        # make fuzz
#   hack/fuzz.sh 1m Route   # only targets whose name matches
set -euo pipefail
fuzztime=${1:?usage: hack/fuzz.sh DURATION [NAME-REGEX]}
only=${2:-.}
cd "$(dirname "$0")/.."
summary=()
while IFS=: read -r file _ line; do
  name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(.*/\1/' <<<"$line")
  pkg=./$(dirname "$file")
  grep -Eq "$only" <<<"$name" || continue
  echo "fuzz: $pkg $name for $fuzztime"
  log=$(mktemp)
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log" | grep -v '^fuzz: elapsed' ; then
    :
  fi
  if ! grep -q '^ok' "$log"; then
    cat "$log"
    echo "fuzz: $name failed; the input is under $pkg/testdata/fuzz/$name/" >&2
    exit 1
  fi
  last=$(grep '^fuzz: elapsed' "$log" | tail -1)
  summary+=("$(printf '%-28s %-36s %s' "$name" "$pkg" "${last#fuzz: }")")
  rm -f "$log"
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' pkg bench cmd | sort)
echo
echo "fuzz summary ($fuzztime each):"
printf '%s\n' "${summary[@]}"
