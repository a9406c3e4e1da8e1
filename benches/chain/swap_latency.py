#!/usr/bin/env python3
"""Swap latency: a running pipeline (generator source, the chain's pii_scrub step,
watching its plugin directory) gets a new plugin file; the time until
`plugin_swaps_total` counts it is read from /metrics. First a version never seen
(compiled now), then the first version again (its compiled form is in the cache).

    benches/chain/swap_latency.py BINARY WORKDIR PLUGIN_DIR
"""
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

binary, work, plugins = sys.argv[1:4]
watched = os.path.join(work, "swap-plugins")
os.makedirs(watched, exist_ok=True)
shutil.copy(os.path.join(plugins, "pii_scrub.wasm"), os.path.join(watched, "pii_scrub.wasm"))
config = os.path.join(work, "swap.yaml")
with open(config, "w") as f:
    f.write(f"""source: {{type: generator, rate: 5000, seed: 3}}
batch: {{max_events: 512, linger: 50ms}}
plugins: {{dir: {watched}, debounce: 50ms, cache: {os.path.join(work, "swap-cache")}}}
pipeline:
  - {{name: pii_scrub, type: plugin, file: pii_scrub.wasm}}
sinks: [{{name: out, type: stdout}}]
dead_letter: {{type: file, path: {os.path.join(work, "swap-dead.jsonl")}}}
server: {{listen: "127.0.0.1:0"}}
""")


def start():
    proc = subprocess.Popen([binary, "run", "--config", config], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    began = time.monotonic()
    for line in proc.stderr:
        found = re.search(r"address=(\S+)", line)
        if "serving /metrics" in line and found:
            return proc, found.group(1), time.monotonic() - began
    raise SystemExit("the pipeline did not start")


def swaps(addr):
    body = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
    found = re.search(r'^synaptic_telemetry_plugin_swaps_total\{plugin="pii_scrub"\} (\S+)', body, re.M)
    return float(found.group(1)) if found else 0.0


def swap_to(addr, source, expected):
    tmp = os.path.join(watched, ".pii_scrub.wasm.tmp")
    shutil.copy(source, tmp)
    began = time.monotonic()
    os.rename(tmp, os.path.join(watched, "pii_scrub.wasm"))
    while swaps(addr) < expected:
        if time.monotonic() - began > 60:
            raise SystemExit("no swap within 60 s")
        time.sleep(0.005)
    return time.monotonic() - began


first = os.path.join(work, "first.wasm")
shutil.copy(os.path.join(plugins, "pii_scrub.wasm"), first)
# A different build: one byte of a custom section appended changes the file's hash
# and nothing it does (a component may end with custom sections).
second = os.path.join(work, "second.wasm")
with open(first, "rb") as f:
    body = f.read()
name = b"bench-swap"
payload = bytes([len(name)]) + name + b"x"
with open(second, "wb") as f:
    f.write(body + bytes([0, len(payload)]) + payload)

proc, addr, cold_start = start()
try:
    new = swap_to(addr, second, 1)
    back = swap_to(addr, first, 2)
finally:
    proc.terminate()
    proc.wait(timeout=30)
proc, addr, warm_start = start()
proc.terminate()
proc.wait(timeout=30)
print(f"start to serving: cold cache {cold_start:.2f} s, warm cache {warm_start:.2f} s")
print(f"swap (50 ms debounce included): new version {new:.2f} s, back to a cached version {back:.2f} s")
