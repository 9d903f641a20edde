"""The runnable example does what it prints: every redelivered message's side effect runs once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONSUMER = Path(__file__).resolve().parents[1] / "consumer.py"


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_the_queue_consumer_charges_every_order_once(runtime, request, backend):
    args = [sys.executable, str(CONSUMER), "--wasm", runtime.origin]
    if backend == "redis":
        args += ["--redis", request.getfixturevalue("redis_server")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 8 messages: side effect ran exactly once" in done.stdout
    assert done.stdout.count("side effect ran 1x") == 8
