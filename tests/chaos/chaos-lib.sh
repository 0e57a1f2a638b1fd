# The chaos suite's shared part (sourced after tests/integration/watch-lib.sh): what the
# converged state must be, waiting for it, and the figures of a scenario.
#
#   chaos_expect ALIAS DOMAIN / chaos_forget ALIAS   a present stick must be in DOMAIN only
#   chaos_domains DOMAIN...                          the domains whose live XML is checked
#   chaos_reset                                      figures of a next scenario start at zero
#   chaos_converge LIMIT_S                           waits until the state is the expected one,
#                                                    or LIMIT_S passes; records the run
#   chaos_report NAME                                prints the scenario's figures, and fails
#                                                    the test when a run did not converge
#
# The state is read from the live XML of the domains: every expected alias exactly once, in
# its domain (else "wrong domain" or "duplicate"), and no other ua-usbvm- alias ("stale").
# Between looks the wait is for libvirt's next event on any domain, bounded: no sleeps.

declare -A CHAOS_WANT=()
CHAOS_DOMAINS=()
CHAOS_RUNS=0 CHAOS_CONVERGED=0 CHAOS_STALE=0 CHAOS_DUP=0 CHAOS_WRONG=0 CHAOS_MISSING=0
CHAOS_TIMES=$USBVM_H_TMP/chaos-times

chaos_domains() { CHAOS_DOMAINS=("$@"); }
# chaos_reset : a new scenario's figures start from zero.
chaos_reset() {
    CHAOS_RUNS=0 CHAOS_CONVERGED=0 CHAOS_STALE=0 CHAOS_DUP=0 CHAOS_WRONG=0 CHAOS_MISSING=0
    : >"$CHAOS_TIMES"
}
chaos_expect() { CHAOS_WANT[$1]=$2; }
chaos_forget() { unset "CHAOS_WANT[$1]"; }

# chaos_state : "stale dup wrong missing" as of now.
chaos_state() {
    local d a stale=0 dup=0 wrong=0 missing=0
    declare -A seen=()
    for d in "${CHAOS_DOMAINS[@]}"; do
        for a in $(virsh -c "$USBVM_H_URI" dumpxml "$d" 2>/dev/null |
            grep -o "alias name='ua-usbvm-[0-9a-f]*" | cut -d"'" -f2); do
            if [ -z "${CHAOS_WANT[$a]:-}" ]; then
                stale=$((stale + 1))
                continue
            fi
            [ "${CHAOS_WANT[$a]}" = "$d" ] || wrong=$((wrong + 1))
            [ -z "${seen[$a]:-}" ] || dup=$((dup + 1))
            seen[$a]=1
        done
    done
    for a in "${!CHAOS_WANT[@]}"; do
        [ -n "${seen[$a]:-}" ] || missing=$((missing + 1))
    done
    echo "$stale $dup $wrong $missing"
}

chaos_converge() {
    local limit=$1 t0 st
    t0=$(date +%s%N)
    local deadline=$((SECONDS + limit))
    CHAOS_RUNS=$((CHAOS_RUNS + 1))
    while :; do
        st=$(chaos_state)
        if [ "$st" = "0 0 0 0" ]; then
            CHAOS_CONVERGED=$((CHAOS_CONVERGED + 1))
            echo $((($(date +%s%N) - t0) / 1000)) >>"$CHAOS_TIMES"
            return 0
        fi
        if [ $SECONDS -ge $deadline ]; then
            read -r s d w m <<<"$st"
            CHAOS_STALE=$((CHAOS_STALE + s)) CHAOS_DUP=$((CHAOS_DUP + d))
            CHAOS_WRONG=$((CHAOS_WRONG + w)) CHAOS_MISSING=$((CHAOS_MISSING + m))
            usbvm_h_log "run $CHAOS_RUNS did not converge in ${limit}s: stale $s, duplicates $d, wrong domain $w, missing $m"
            return 1
        fi
        virsh -q -c "$USBVM_H_URI" event --all --timeout 1 >/dev/null 2>&1 || true
    done
}

chaos_report() {
    local name=$1 p50=- p99=-
    if [ -s "$CHAOS_TIMES" ]; then
        read -r p50 p99 < <(sort -n "$CHAOS_TIMES" | awk '{v[NR]=$1} END {
            printf "%.0f %.0f\n", v[int((NR-1)*0.50)+1]/1000, v[int((NR-1)*0.99)+1]/1000 }')
    fi
    printf 'chaos %s: runs %d, converged %d, converge p50 %s ms p99 %s ms, stale %d, duplicates %d, wrong domain %d, missing %d\n' \
        "$name" "$CHAOS_RUNS" "$CHAOS_CONVERGED" "$p50" "$p99" "$CHAOS_STALE" "$CHAOS_DUP" \
        "$CHAOS_WRONG" "$CHAOS_MISSING" | tee -a "${USBVM_CHAOS_FIGURES:-/dev/null}"
    # A libvirtd that died on its own (not one a scenario stopped and started again) leaves
    # runs unconverged for a reason outside usbvm: said by name, before the counts.
    local lvd
    lvd=$(usbvm_h_libvirtd_pid || true)
    if [ "$USBVM_H_STARTED_LIBVIRTD" = 1 ] && [ -n "$lvd" ] && ! kill -0 "$lvd" 2>/dev/null; then
        usbvm_h_log "$name: libvirtd (pid $lvd) died during the scenario without being asked to;" \
            "the kernel log's last libvirtd crash: $(dmesg | grep -E "libvirtd\[[0-9]+\]: segfault" | tail -n 1)"
    fi
    # The invariants hold in every scenario, whatever libvirt does.
    usbvm_h_assert_eq 0 "$CHAOS_STALE" "$name: nothing stale"
    usbvm_h_assert_eq 0 "$CHAOS_DUP" "$name: nothing in two places"
    usbvm_h_assert_eq 0 "$CHAOS_WRONG" "$name: nothing in the wrong domain"
    # Convergence too, unless the scenario says why a stick may stay out (CHAOS_MAY_MISS).
    if [ -n "${CHAOS_MAY_MISS:-}" ]; then
        usbvm_h_ok "$name: $((CHAOS_RUNS - CHAOS_CONVERGED)) of $CHAOS_RUNS runs left a stick out ($CHAOS_MAY_MISS)"
        # A stick left out is never silent: watch says what holds it and what frees it.
        if [ "$CHAOS_MISSING" -gt 0 ] && [ -n "${CHAOS_MISS_SAID:-}" ]; then
            # CHAOS_OLD_LOGS: the logs of earlier watch processes of the scenario.
            local said
            # shellcheck disable=SC2086 # none, one or more files
            said=$(cat ${CHAOS_OLD_LOGS:-} "$WL_LOG" | grep -m1 -oE "$CHAOS_MISS_SAID[^\"]*" || true)
            [ -n "$said" ] ||
                usbvm_h_fail "$name: a stick was left out and watch never said why (/$CHAOS_MISS_SAID/)"
            usbvm_h_ok "$name: watch said why: $said"
        fi
    else
        usbvm_h_assert_eq "$CHAOS_RUNS" "$CHAOS_CONVERGED" "$name: every run converged"
    fi
}

# chaos_alias SERIAL : the alias watch gave the stick (from its plug record).
chaos_alias() {
    jq -r --arg s "$1" 'select(.event=="plug" and .serial==$s) | .alias' "$WL_LOG" | head -n1
}
