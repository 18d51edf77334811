#!/bin/bash
# usage: mainjob.sh TAG  -> fresh cache, run main job from empty dir, timestamped
tag=$1; shift
export EDGEBENCH_CACHE=/tmp/newc/cache-$tag; rm -rf $EDGEBENCH_CACHE /tmp/newc/run-$tag; mkdir -p /tmp/newc/run-$tag
export EDGEBENCH_BOARD_DIR=/root/.cache/edgebench/board
export PYTHONPATH=/work/wt-newc
cd /tmp/newc/run-$tag
( /usr/bin/time -f "[exit %x, wall %e s, cpu %U+%S s]" /work/main/.venv/bin/edgebench run "$@" 2>&1 ) | /work/main/.venv/bin/python /tmp/newc/stamp.py > /tmp/newc/$tag.log
cat /proc/loadavg >> /tmp/newc/$tag.log
