# expect.sh: helpers the shell tests share (sourced). The caller sets W (its work directory)
# and failures=0; expect and check count failures there.

# expect NAME STATUS NEEDLE -- COMMAND...: runs COMMAND (60 s limit, or $LIMIT) and checks
# its exit status and that stderr contains NEEDLE (empty: anything)
expect() {
    local name=$1 status=$2 needle=$3
    shift 4
    timeout "${LIMIT:-60}" "$@" >"$W/out.txt" 2>"$W/err.txt"
    local rc=$?
    if [[ $rc -eq 124 ]]; then
        echo "FAIL $name: still running after ${LIMIT:-60} s (a hang)"
        failures=$((failures + 1))
    elif [[ $rc -ne $status ]] || { [[ -n $needle ]] && ! grep -qF -- "$needle" "$W/err.txt"; }; then
        echo "FAIL $name: status $rc (want $status), stderr: $(tail -c 400 "$W/err.txt")"
        failures=$((failures + 1))
    else
        printf 'ok   %-40s status %-3s %s\n' "$name" "$rc" "$(grep -m1 -F -- "$needle" "$W/err.txt" | cut -c1-150)"
    fi
}

# check NAME CONDITION-COMMAND...: the condition holds
check() {
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}

# sums DIR: the checksums of the files in DIR, sorted (to compare before and after)
sums() { (cd "$1" && sha256sum -- * 2>/dev/null | sort); }
