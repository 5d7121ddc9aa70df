"""Celery side of the demo app: the app `tasks`, its tasks and worker signals.

Every task run is recorded in Redis (database of DEMO_RECORD_URL) by a unique
id, so tests can tell a lost task (enqueued, never completed) from one that ran
twice (completed count > 1).
"""

import json
import os
import socket
import sys
import time

import redis
from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutdown

import demo_settings as settings

app = Celery("tasks", broker=settings.BROKER_URL)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": settings.VISIBILITY_TIMEOUT},
    beat_schedule={
        "tick": {"task": "tasks.tick", "schedule": settings.BEAT_PERIOD},
    },
)

records = redis.Redis.from_url(settings.RECORD_URL)
_BOOT_BALLAST = []


def _record(key, **fields):
    fields.setdefault("color", settings.COLOR)
    fields.setdefault("release", settings.RELEASE)
    fields.setdefault("host", socket.gethostname())
    fields.setdefault("t", time.time())
    records.rpush(key, json.dumps(fields))


@app.task(name="tasks.work")
def work(uid, seconds=0.2):
    """A CPU-bound task; records its start and its completion by `uid`."""
    started = time.time()
    records.hset("demo:started", uid, started)
    settings.burn_cpu(float(seconds))
    records.hincrby("demo:runs", uid, 1)
    _record("demo:done", uid=uid, started=started)
    return uid


@app.task(name="tasks.tick")
def tick():
    """What beat sends every period; the send itself is recorded by beat."""
    records.incr("demo:ticks_run")


@worker_init.connect
def _boot_cost(**_kwargs):
    """A realistic boot: imports, caches, connections cost CPU and memory."""
    try:
        os.unlink(settings.READY_FILE)
    except FileNotFoundError:
        pass
    if settings.WORKER_CRASH_AT_START:
        print("demo: DEMO_WORKER_CRASH_AT_START=1, exiting", file=sys.stderr)
        os._exit(3)  # a crash, not a clean exit Celery could catch
    if settings.WORKER_BOOT_MB:
        _BOOT_BALLAST.append(bytearray(b"\x01" * settings.WORKER_BOOT_MB * 1024 * 1024))
    if settings.WORKER_BOOT_CPU_S:
        settings.burn_cpu(settings.WORKER_BOOT_CPU_S)


@worker_ready.connect
def _mark_ready(**_kwargs):
    os.makedirs(os.path.dirname(settings.READY_FILE), exist_ok=True)
    with open(settings.READY_FILE, "w", encoding="utf-8") as ready:
        ready.write(str(time.time()))
    _record("demo:worker_ready")


@worker_shutdown.connect
def _mark_not_ready(**_kwargs):
    try:
        os.unlink(settings.READY_FILE)
    except FileNotFoundError:
        pass
