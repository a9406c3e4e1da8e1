#!/usr/bin/env python3
"""PII-heavy task.completed events for the full-chain benchmark, one JSON line each
(about 410 bytes): about half the `data.error_message` values hold an e-mail
address and/or an IPv4 address; severities range over DEBUG…ERROR so that a
severity filter has work. Deterministic for a given count and seed.

    benches/chain/pii_events.py COUNT [SEED] > events.jsonl
"""
import json
import random
import sys

count = int(sys.argv[1])
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 7)
severities = ["DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"]
words = ["connection", "reset", "while", "syncing", "shard", "retry", "budget", "exhausted",
         "upstream", "returned", "status", "timeout", "after", "handshake", "with", "peer"]
out = sys.stdout
start = 1_767_225_600_000
for i in range(count):
    text = " ".join(rng.choice(words) for _ in range(rng.randint(4, 8)))
    roll = rng.random()
    if roll < 0.2:
        text += f" notify user{rng.randint(1, 99999)}@example-corp.com"
    elif roll < 0.35:
        text += f" from 10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    elif roll < 0.5:
        text += (f" user{rng.randint(1, 99999)}@mail.example.org via "
                 f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
    success = rng.random() < 0.5
    event = {
        "event_id": f"evt-{i:010d}-{rng.getrandbits(32):08x}",
        "timestamp": start + i,
        "component": "scheduler",
        "event_type": "task.completed",
        "severity": rng.choice(severities),
        "tags": {"region": "eu-west-1", "cluster": "prod-3"},
        "context": {"trace_id": f"{rng.getrandbits(128):032x}", "span_id": f"{rng.getrandbits(64):016x}"},
        "data": {
            "task_id": f"task-{rng.getrandbits(40):010x}",
            "agent_id": f"agent-{rng.randint(1, 500):03d}",
            "duration_ms": rng.randint(5, 90_000),
            "result_size_bytes": rng.randint(0, 1 << 20),
            "success": success,
            "error_message": text,
        },
    }
    out.write(json.dumps(event, separators=(",", ":")))
    out.write("\n")
