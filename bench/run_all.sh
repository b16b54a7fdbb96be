#!/usr/bin/env bash
# Run every scenario with its defaults (about 25 minutes on 2 cores); raw figures go to
# bench/results/*.json, the console output to bench/results/run_all.log.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p bench/results
ulimit -n 20000 2>/dev/null || true
{
  echo "== $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  echo "== B5"; timeout 900 $PY bench/b5_window.py
  echo "== B1"; timeout 900 $PY bench/b1_ingest.py
  echo "== B2"; timeout 1200 $PY bench/b2_fanout.py
  echo "== B3"; timeout 1500 $PY bench/b3_idle.py
  echo "== B4"; timeout 1200 $PY bench/b1_ingest.py --panels 5
} 2>&1 | tee bench/results/run_all.log
