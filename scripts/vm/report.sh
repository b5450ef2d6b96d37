#!/usr/bin/env bash
# Reads the serial-console logs of scripts/vm/test-vm.sh and prints, per
# group and top-level test, what each kernel made of it:
#   PASS, FAIL, SKIP (reason below the table), HUNG (named by Go's
#   -test.timeout panic, or still running when the group or the VM was
#   stopped), NORESULT (started, never reported), - (group not run).
#   report.sh LABEL=LOG...
# Exits 1 when any test failed, hung or gave no result, or a log is missing.
set -euo pipefail
labels=() logs=()
for a in "$@"; do labels+=("${a%%=*}"); logs+=("${a#*=}"); done
for l in "${logs[@]}"; do [ -r "$l" ] || { echo "report.sh: no log $l" >&2; exit 1; }; done
awk -v labels="${labels[*]}" '
BEGIN { split(labels, label, " ") }
function setst(k, g, t, s, note) {
	key = g SUBSEP t
	if (!(key in seen)) { seen[key] = 1; order[++n] = key }
	st[k, key] = s
	if (note != "") nt[k, key] = nt0[k, key] = note
}
function closegroup(k, g, why,   key, parts) {
	for (key in started) {
		split(key, parts, SUBSEP)
		if (parts[1] == k && parts[2] == g && !((k, parts[2] SUBSEP parts[3]) in st))
			setst(k, parts[2], parts[3], why, "")
	}
}
FNR == 1 {
	if (k != "" && g != "") closegroup(k, g, "HUNG")
	k = label[++fi]; kernels[++nk] = k; g = ""; cur = ""; timedout = 0
}
{ sub(/\r$/, "") }
/^VM-KERNEL / { kver[k] = $2 }
/^VM-GROUP-START / { g = $2; gseen[k, g] = 1; timedout = 0; next }
/^VM-GROUP-STUCK / { closegroup(k, g, "HUNG"); next }
/^VM-GROUP-END / {
	closegroup(k, g, "NORESULT")
	for (i = 3; i <= NF; i++) if ($i ~ /^seconds=/) { s = $i; sub(/seconds=/, "", s); gsec[k, g] = s }
	g = ""; next
}
/^VM-DONE/ { done[k] = 1 }
/Kernel panic/ { crashes[k]++ }
g == "" { next }
/^=== RUN   Test[^\/]*$/ { cur = $3; started[k, g, cur] = 1; next }
/^    [A-Za-z0-9_]+\.go:[0-9]+: / {
	m = $0; sub(/^    [A-Za-z0-9_]+\.go:[0-9]+: /, "", m); last[k, g, cur] = m
	if (!((k, g, cur) in first)) first[k, g, cur] = m
	# A message ending in ":" heads a dump (a log, an output); the first
	# other one is most often the error itself.
	if (m !~ /:$/ && !((k, g, cur) in plain)) plain[k, g, cur] = m
	next
}
# Go prints the results of subtests after that of their parent.
/^[ \t]+--- FAIL: Test/ {
	t = $3; sub(/\/.*/, "", t); key = g SUBSEP t
	failsub[k, key] = failsub[k, key] (failsub[k, key] == "" ? "" : ", ") $3
	if ((k, key) in st) nt[k, key] = "failed " failsub[k, key] "; " nt0[k, key]
	next
}
/^--- (PASS|FAIL|SKIP): Test/ {
	s = $2; sub(/:$/, "", s); t = $3
	note = s == "SKIP" ? last[k, g, t] : ""
	if (s == "FAIL") note = (k, g, t) in plain ? plain[k, g, t] : first[k, g, t]
	setst(k, g, t, s, note); next
}
/^panic: test timed out after / { timedout = 1; next }
timedout && /^[ \t]+Test[^ ]+ \([0-9.hms]+\)$/ {
	t = $1; sub(/\/.*/, "", t); setst(k, g, t, "HUNG", "named by -test.timeout"); next
}
END {
	if (k != "" && g != "") closegroup(k, g, "HUNG")
	w = 12
	for (i = 1; i <= n; i++) { split(order[i], p, SUBSEP); l = length(p[1] ": " p[2]); if (l > w) w = l }
	printf "%-" w "s", "group: test"
	for (j = 1; j <= nk; j++) printf "  %-10s", kernels[j]
	printf "\n"
	bad = 0
	for (i = 1; i <= n; i++) {
		split(order[i], p, SUBSEP)
		printf "%-" w "s", p[1] ": " p[2]
		for (j = 1; j <= nk; j++) {
			kk = kernels[j]
			if ((kk, order[i]) in st) s = st[kk, order[i]]
			else s = gseen[kk, p[1]] ? "NORESULT" : "-"
			if (s == "FAIL" || s == "HUNG" || s == "NORESULT") bad = 1
			printf "  %-10s", s
		}
		printf "\n"
	}
	for (j = 1; j <= nk; j++) {
		kk = kernels[j]
		printf "\n%s (%s)%s%s\n", kk, kver[kk] == "" ? "did not boot" : kver[kk], done[kk] ? "" : ": the run did not finish",
			crashes[kk] ? "; the guest kernel crashed " crashes[kk] " time(s) (see the log); the groups left ran again" : ""
		if (kver[kk] == "" || !done[kk]) bad = 1
		for (i = 1; i <= n; i++)
			if ((kk, order[i]) in nt && st[kk, order[i]] != "PASS") {
				split(order[i], p, SUBSEP)
				printf "  %s %s: %s: %s\n", st[kk, order[i]], p[1], p[2], substr(nt[kk, order[i]], 1, 200)
			}
	}
	exit bad
}' "${logs[@]}"
