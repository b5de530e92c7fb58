#!/usr/bin/env bash
# On the lent GPU machine, in the repository root, with `.device` carried:
#   run(command="bash tools/device_session.sh", carry=[".device"], timeout_s=580)
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .device/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv || true
python3 tools/device_session.py run --budget "${BUDGET:-540}" 2>&1 | tee "$OUT/log.txt"
