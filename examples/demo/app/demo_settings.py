"""Settings of the demo app, read once from the environment.

Every knob that shapes the app's footprint is here, off (zero) by default so the
tests run fast; the benchmark turns them up to make CPU contention real.
"""

import os

COLOR = os.environ.get("BLUEGREEN_COLOR", "unknown")
RELEASE = os.environ.get("DEMO_RELEASE", "unknown")
BROKEN = os.environ.get("DEMO_BROKEN", "0") == "1"

BROKER_URL = os.environ.get("DEMO_BROKER_URL", "redis://redis:6379/0")
# Records (completed tasks, beat sends) live in another Redis database than the
# broker's queues, so counting queued messages never sees them.
RECORD_URL = os.environ.get("DEMO_RECORD_URL", "redis://redis:6379/1")
VISIBILITY_TIMEOUT = int(os.environ.get("DEMO_VISIBILITY_TIMEOUT", "3600"))

BEAT_PERIOD = float(os.environ.get("DEMO_BEAT_PERIOD", "1"))
WEB_CPU_MS = float(os.environ.get("DEMO_WEB_CPU_MS", "0"))
WORKER_BOOT_CPU_S = float(os.environ.get("DEMO_WORKER_BOOT_CPU_S", "0"))
WORKER_BOOT_MB = int(os.environ.get("DEMO_WORKER_BOOT_MB", "0"))
# A task fails (and is recorded as failed) when its argument asks for it; a
# worker "crashes at start" when this is set, for fault tests.
WORKER_CRASH_AT_START = os.environ.get("DEMO_WORKER_CRASH_AT_START", "0") == "1"

# Written when the worker is ready to consume, removed at shutdown. It sits on a
# tmpfs (see compose.yml), so a restarted container never finds a stale one.
READY_FILE = os.environ.get("DEMO_READY_FILE", "/run/celery/ready")


def burn_cpu(seconds):
    """Keep one core busy for about `seconds` (wall clock)."""
    import hashlib
    import time

    end = time.monotonic() + seconds
    digest = b"lowspec"
    while time.monotonic() < end:
        for _round in range(200):
            digest = hashlib.sha256(digest).digest()
    return digest
