"""hack/bench-gateway: the gateway's throughput and latency beside its ceiling, in one run.

The ceiling is the same server stack (granian RSGI, same workers) with an app that only parses
the JSON body (eventfleet.gateway.ceiling). The load generator is wrk (Debian's, installed here
when missing), on the same host, loopback only; every run is bounded by --duration.

Scenarios: single-event POSTs and 100-event batches at peak (ceiling, then gateway), then the
gateway at about half of its measured peak for the p99 target. At the end the topic's offsets
are compared with the events the gateway acknowledged. Targets (issue 6): >= 8,000 single
req/s, >= 50,000 batch events/s, p99 at half peak < 50 ms.

    hack/bench-gateway [--duration 10] [--workers 2] [--connections 64]

Needs the local stack (hack/stack up) and the virtualenv (make venv).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from fleetstack.cli import environment
from fleetstack.ports import free_port
from fleetstack.processes import stop_child

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
TARGET_SINGLE_RPS = 8000
TARGET_BATCH_EPS = 50_000
TARGET_P99_MS = 50.0

LUA = r"""
math.randomseed(%(seed)d)
local batch = %(batch)d
local pause = %(delay)f
local path = batch > 0 and "/api/v1/events/batch" or "/api/v1/events"
local headers = {["Content-Type"] = "application/json"}
local kinds = {
  function() return string.format('"event_type":"match_completed","data":{"score":%%d,"won":%%s,"kills":%%d,"deaths":%%d,"duration_seconds":%%d}', math.random(0, 5000), math.random() < 0.5 and "true" or "false", math.random(0, 30), math.random(0, 30), math.random(60, 1800)) end,
  function() return string.format('"event_type":"player_login","data":{"platform":"%%s","session_id":"s-%%d"}', ({"pc", "ps5", "xbox", "switch", "ios", "android"})[math.random(1, 6)], math.random(1, 1e9)) end,
  function() return '"event_type":"player_logout","data":{"session_seconds":' .. math.random(1, 20000) .. '}' end,
  function() return '"event_type":"player_level_up","data":{"level":' .. math.random(1, 100) .. '}' end,
  function() return '"event_type":"achievement_unlocked","data":{"achievement_id":"ach-' .. math.random(1, 500) .. '"}' end,
  function() return string.format('"event_type":"purchase","data":{"amount":"%%d.%%02d","currency":"%%s"}', math.random(0, 99), math.random(0, 99), ({"EUR", "USD", "GBP", "JPY"})[math.random(1, 4)]) end,
}
local function event()
  local player = math.random(1, 100000)
  return string.format('{"player_id":"player-%%d","game_id":"game-%%d","timestamp":"%(timestamp)s",%%s}', player, player %% 50, kinds[math.random(1, 6)]())
end
request = function()
  local body
  if batch > 0 then
    local items = {}
    for i = 1, batch do items[i] = event() end
    body = "[" .. table.concat(items, ",") .. "]"
  else
    body = event()
  end
  return wrk.format("POST", path, headers, body)
end
if pause > 0 then
  delay = function() return pause end
end
"""


@dataclass
class Result:
    name: str
    requests_per_second: float
    events_per_request: int
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def events_per_second(self) -> float:
        return self.requests_per_second * self.events_per_request


def say(text: str) -> None:
    print(text, flush=True)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    say("installing wrk (Debian package) …")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=env, check=False, capture_output=True).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk could not be installed")
    return found


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not answer 200 within {timeout}s")


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def family_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the granian workers), from /proc."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    *,
    name: str,
    duration: int,
    connections: int,
    events: int,
) -> Result:
    out = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return Result(
        name,
        rps,
        events,
        _percentile(out, "50%"),
        _percentile(out, "99%"),
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def _percentile(out: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if not match:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return float(match.group(1)) * scale


def lua(folder: Path, name: str, *, batch: int, delay_ms: float) -> Path:
    path = folder / f"{name}.lua"
    timestamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path.write_text(
        LUA % {"seed": os.getpid(), "batch": batch, "delay": delay_ms, "timestamp": timestamp},
        encoding="utf-8",
    )
    return path


def show(result: Result, ceiling: Result | None = None) -> None:
    ratio = (
        f"{result.requests_per_second / ceiling.requests_per_second:6.0%} of ceiling"
        if ceiling
        else ""
    )
    say(
        f"  {result.name:34s} {result.requests_per_second:9,.0f} req/s "
        f"{result.events_per_second:10,.0f} events/s   p50 {result.p50_ms:7.2f} ms   "
        f"p99 {result.p99_ms:7.2f} ms   non-2xx {result.non_2xx}   socket errors "
        f"{result.socket_errors}  {ratio}"
    )


def topic_events(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415 - venv-only import

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for number in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, number), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def refused_requests(metrics_url: str) -> str:
    """Answers other than 202/200 by status, from the gateway's metrics (when wrk saw some)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as answer:  # noqa: S310 - loopback
        text = answer.read().decode()
    found = re.findall(
        r"^eventfleet_gateway_(?:requests|rejects)_total\{(.*?)\} ([\d.e+]+)$", text, re.MULTILINE
    )
    return ", ".join(
        f"{labels}: {float(n):,.0f}"
        for labels, n in found
        if "202" not in labels and '"200"' not in labels
    )


def report_refusals(metrics_url: str) -> None:
    refusals = refused_requests(metrics_url)
    if refusals:  # warm-ups included: a 503 for a Kafka that is behind shows here too
        say(f"  the gateway's refusals: {refusals}")
    # Others may share the host: a load average well above the run's own says the numbers are
    # low because of them (the ceiling beside each result says by how much).
    say(f"  load average at the end: {os.getloadavg()[0]:.2f}")


def accepted_events(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=10) as answer:  # noqa: S310 - loopback
        text = answer.read().decode()
    match = re.search(
        r'^eventfleet_gateway_events_total\{outcome="accepted"\} ([\d.e+]+)$', text, re.MULTILINE
    )
    return float(match.group(1)) if match else 0.0


def scenarios(
    *,
    wrk: str,
    options: argparse.Namespace,
    ceiling_url: str,
    gateway_url: str,
    gateway_pid: int,
    folder: Path,
) -> list[tuple[str, bool, str]]:
    def bench(name: str, url: str, batch: int, delay_ms: float = 0.0, **kw: int) -> Result:
        script = lua(folder, name.replace(" ", "-"), batch=batch, delay_ms=delay_ms)
        return run_wrk(
            wrk,
            url,
            script,
            name=name,
            events=max(batch, 1),
            duration=kw.get("duration", options.duration),
            connections=kw.get("connections", options.connections),
        )

    # Warm up both (JIT-less, but connections, caches, producer metadata).
    bench("warm-up", ceiling_url, 0, duration=2)
    bench("warm-up", gateway_url, 0, duration=2)

    say("\nsingle events (POST /api/v1/events)")
    # A request lasts until Kafka acknowledged (linger + a round trip), so one connection does
    # ~1/latency requests/s: the peak is measured with options.connections (default 128) and,
    # for comparison, with half as many.
    single_ceiling = bench("ceiling: parse JSON only", ceiling_url, 0)
    show(single_ceiling)
    cpu_before = family_cpu_seconds(gateway_pid)
    single = bench("gateway: validate + Kafka ack", gateway_url, 0)
    cpu = family_cpu_seconds(gateway_pid) - cpu_before
    show(single, single_ceiling)
    say(
        f"  gateway CPU: {cpu / max(1, single.requests_per_second * options.duration) * 1e6:.0f}"
        " us a request (all workers, with the Kafka client's threads)"
    )
    fewer = options.connections // 2
    show(bench(f"gateway with {fewer} connections", gateway_url, 0, connections=fewer))

    say(f"\nbatches of {options.batch_size} (POST /api/v1/events/batch)")
    batch_connections = max(4, options.connections // 8)
    batch_ceiling = bench(
        "ceiling: parse JSON only", ceiling_url, options.batch_size, connections=batch_connections
    )
    show(batch_ceiling)
    cpu_before = family_cpu_seconds(gateway_pid)
    batch = bench(
        "gateway: validate + Kafka ack",
        gateway_url,
        options.batch_size,
        connections=batch_connections,
    )
    cpu = family_cpu_seconds(gateway_pid) - cpu_before
    show(batch, batch_ceiling)
    say(
        f"  gateway CPU: {cpu / max(1, batch.events_per_second * options.duration) * 1e6:.0f}"
        " us an event (all workers, with the Kafka client's threads)"
    )

    say("\nhalf of the gateway's peak (single events, paced by wrk's delay)")
    connections = 32
    target = single.requests_per_second / 2
    delay_ms = connections * 1000 / target
    probe = bench("calibration", gateway_url, 0, delay_ms, duration=3, connections=connections)
    latency_ms = max(0.0, connections * 1000 / probe.requests_per_second - delay_ms)
    delay_ms = max(0.1, connections * 1000 / target - latency_ms)
    half = bench("gateway at ~half peak", gateway_url, 0, delay_ms, connections=connections)
    show(half)
    say(f"  ({half.requests_per_second / single.requests_per_second:.0%} of the measured peak)")

    time.sleep(1.5)  # the workers flush their metrics every second
    return [
        (
            "single-event POSTs >= 8,000 req/s",
            single.requests_per_second >= TARGET_SINGLE_RPS,
            f"{single.requests_per_second:,.0f} req/s",
        ),
        (
            "batch POSTs >= 50,000 events/s",
            batch.events_per_second >= TARGET_BATCH_EPS,
            f"{batch.events_per_second:,.0f} events/s",
        ),
        ("p99 at half peak < 50 ms", half.p99_ms < TARGET_P99_MS, f"{half.p99_ms:.1f} ms"),
        (
            "no errors",
            all(r.non_2xx == 0 and r.socket_errors == 0 for r in (single, batch, half)),
            "non-2xx / socket errors",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=3)
    options = parser.parse_args()
    if not 1 <= options.duration <= 120:
        parser.error("--duration must be 1-120 seconds")

    from confluent_kafka.admin import AdminClient, NewTopic  # noqa: PLC0415 - venv-only import

    wrk = ensure_wrk()
    bootstrap = environment(["EVENTFLEET_KAFKA_BOOTSTRAP"])["EVENTFLEET_KAFKA_BOOTSTRAP"]
    topic = f"bench-gateway-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, options.partitions, 1)])[topic].result(timeout=30)
    say(
        f"topic {topic} ({options.partitions} partitions) on {bootstrap}; {options.workers} "
        f"workers; wrk -c{options.connections}, {options.duration}s per scenario; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
    )
    processes: list[subprocess.Popen[bytes]] = []
    folder = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    try:
        ceiling_port, gateway_port = free_port(), free_port()
        ceiling = start(
            [
                str(VENV_BIN / "granian"),
                "--interface",
                "rsgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(ceiling_port),
                "--workers",
                str(options.workers),
                "--log-level",
                "warning",
                "eventfleet.gateway.ceiling:app",
            ],
            folder / "ceiling.log",
        )
        processes.append(ceiling)
        gateway = start(
            [
                str(VENV_BIN / "eventfleet"),
                "gateway",
                "--host",
                "127.0.0.1",
                "--port",
                str(gateway_port),
                "--workers",
                str(options.workers),
                "--kafka-bootstrap",
                bootstrap,
                "--topic",
                topic,
                "--log-level",
                "warning",
            ],
            folder / "gateway.log",
        )
        processes.append(gateway)
        ceiling_url = f"http://127.0.0.1:{ceiling_port}"
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        wait_http(ceiling_url + "/")
        wait_http(gateway_url + "/readyz")

        checks = scenarios(
            wrk=wrk,
            options=options,
            ceiling_url=ceiling_url,
            gateway_url=gateway_url,
            gateway_pid=gateway.pid,
            folder=folder,
        )
        in_kafka = topic_events(bootstrap, topic)
        acknowledged = accepted_events(gateway_url + "/metrics")
        lost = acknowledged - in_kafka
        late = in_kafka - acknowledged
        say(
            f"\nKafka: {in_kafka:,} events in {topic}; the gateway acknowledged {acknowledged:,.0f}"
        )
        if late > 0:
            say(
                f"  {late:,.0f} more than acknowledged: events whose request got 503 when Kafka "
                "was slower than the delivery timeout and that landed after all (at least once)"
            )
        report_refusals(gateway_url + "/metrics")
        checks.append(
            ("every acknowledged event is in Kafka", lost <= 0, f"{max(lost, 0):,.0f} missing")
        )
        say("\ntargets")
        for label, passed, value in checks:
            say(f"  {'PASS' if passed else 'MISS'}  {label:44s} {value}")
        return 0 if all(passed for _, passed, _ in checks) else 1
    finally:
        for process in processes:
            stop_child(process)
        try:
            admin.delete_topics([topic])[topic].result(timeout=30)
        except Exception as error:  # noqa: BLE001 - report, do not hide the run's own error
            say(f"could not delete topic {topic}: {error}")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
