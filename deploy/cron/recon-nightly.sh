#!/usr/bin/env bash
# Nightly trade-recon run for cron: reconciles yesterday's delivery day (Europe/Amsterdam) and
# decides who hears about it. cron mails whatever a job prints, so this script prints only when
# a person must act; everything else goes to the log file.
#
#   exit 0  clean, findings (1) or incomplete (2): PagerDuty was already alerted by the job,
#           or the previous run still holds the lock (4): it will finish that day itself
#   exit 3  bad configuration or usage: printed, so cron mails the owner (MAILTO)
#   other   the job crashed or was killed: printed and passed on, so cron mails the owner
#
# Environment: RECON (the recon executable, default: recon on PATH), RECON_CONFIG (config file),
# RECON_DAY (default: yesterday in Europe/Amsterdam), TRADE_RECON_LOG_DIR (default
# /var/log/trade-recon). Arguments are passed on to `recon run` (e.g. --recheck 2).
set -uo pipefail

RECON="${RECON:-recon}"
LOG_DIR="${TRADE_RECON_LOG_DIR:-/var/log/trade-recon}"
# Noon, not now: "now minus a day" can land in an hour that a DST switch skipped.
DAY="${RECON_DAY:-$(TZ=Europe/Amsterdam date -d 'yesterday 12:00' +%F)}"

if ! mkdir -p "$LOG_DIR" 2>/dev/null || [ ! -w "$LOG_DIR" ]; then
  echo "trade-recon: cannot write to log directory $LOG_DIR (set TRADE_RECON_LOG_DIR)"
  exit 3
fi
LOG="$LOG_DIR/recon-$DAY.log"

args=(run --day "$DAY")
[ -n "${RECON_CONFIG:-}" ] && args+=(--config "$RECON_CONFIG")
args+=("$@")

{
  echo "=== $(date -u +%FT%TZ) start: $RECON ${args[*]}"
} >>"$LOG"
"$RECON" "${args[@]}" >>"$LOG" 2>&1 </dev/null
rc=$?

case "$rc" in
  0) note="clean" ;;
  1) note="findings; PagerDuty alerted by the job" ;;
  2) note="incomplete; PagerDuty alerted by the job" ;;
  3) note="configuration or usage error" ;;
  4) note="locked: the previous run for this day is still going; left to it" ;;
  *) note="crashed or killed (exit $rc)" ;;
esac
echo "=== $(date -u +%FT%TZ) end: exit $rc: $note" >>"$LOG"

case "$rc" in
  0 | 1 | 2 | 4) exit 0 ;;
  *)
    echo "trade-recon $DAY: $note. Last lines of $LOG:"
    tail -n 20 "$LOG"
    exit "$rc"
    ;;
esac
