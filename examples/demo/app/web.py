"""Web side of the demo app (Flask under gunicorn)."""

import json
import socket
import time
import uuid

import redis
from flask import Flask, jsonify, request

import demo_settings as settings
import tasks

app = Flask(__name__)
records = redis.Redis.from_url(settings.RECORD_URL)


def _identity():
    return {
        "app": "demo",
        "color": settings.COLOR,
        "release": settings.RELEASE,
        "host": socket.gethostname(),
    }


@app.get("/health/")
def health():
    body = _identity()
    if settings.BROKEN:
        body["status"] = "broken"
        return jsonify(body), 500
    try:
        records.ping()
    except redis.RedisError as exc:
        body.update(status="broker unreachable", error=str(exc))
        return jsonify(body), 503
    body["status"] = "ok"
    return jsonify(body)


@app.get("/")
def index():
    if settings.WEB_CPU_MS:
        settings.burn_cpu(settings.WEB_CPU_MS / 1000.0)
    ident = _identity()
    banner = "v2 is here" if settings.RELEASE == "v2" else "hello"
    return f"{banner}: demo {ident['release']} on {ident['color']}\n"


@app.post("/enqueue")
def enqueue():
    """Queue `n` CPU-bound tasks of `seconds` each; answer their ids."""
    payload = request.get_json(silent=True) or request.values
    count = int(payload.get("n", 1))
    seconds = float(payload.get("seconds", 0.2))
    uids = []
    for _index in range(count):
        uid = uuid.uuid4().hex
        records.sadd("demo:enqueued", uid)
        # The uid is also the task id, so worker logs name the task a test looks for.
        tasks.work.apply_async((uid, seconds), task_id=uid)
        uids.append(uid)
    return jsonify({"enqueued": uids, "at": time.time()})


@app.get("/stats")
def stats():
    runs = records.hgetall("demo:runs")
    return jsonify(
        {
            "enqueued": records.scard("demo:enqueued"),
            "completed": len(runs),
            "run_twice": sorted(uid.decode() for uid, n in runs.items() if int(n) > 1),
            "beat_sends": [json.loads(s) for s in records.lrange("demo:beat_sends", -5, -1)],
            **_identity(),
        }
    )
