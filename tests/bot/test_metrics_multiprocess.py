"""/metrics with several gunicorn workers (issue 18): prometheus-client's multiprocess mode.

The bot runs under the Dockerfile's gunicorn command with `--workers 2`; whichever worker
answers /metrics, it reports every worker's requests, and a worker SIGKILLed (gunicorn starts
another) takes none of them away. One worker without PROMETHEUS_MULTIPROC_DIR is today's
single registry, which tests/bot/test_http.py and test_metrics.py cover.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from checks.http import MetricsCheck
from checks.interface import CheckContext, Status
from checks.registry import CHECKS
from opsctl.config import load_config
from opsctl.devserver import DevServer, DevServerError
from opsctl.exitcodes import ExitCode
from tests.checks.test_runbook_values import (
    deploy_files,
    deploy_repo,  # noqa: F401 - a fixture, asked by name
    set_env,
    web_service,
)
from tests.conftest import BASE_ENV, PUBLIC, REPO_ROOT, message_sid, signed_headers, whatsapp_form
from tests.loopback import TLS

WEBHOOK_OK = ("clara_http_requests_total", {"route": "/webhook", "method": "POST", "status": "200"})
TWO_WORKERS = "--workers 2"


def samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called `name` in one fresh fetch of /metrics."""
    # A new connection each time: gunicorn hands it to either worker.
    text = httpx.get(url + "/metrics", headers={"Connection": "close"}, timeout=10, verify=TLS).text
    return [
        (sample.labels, float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def webhook_count(url: str) -> float:
    """clara_http_requests_total for answered webhook posts, as one /metrics says."""
    name, labels = WEBHOOK_OK
    return sum(v for found, v in samples(url, name) if labels.items() <= found.items())


def worker_pids(url: str) -> set[int]:
    """The live workers /metrics names (clara_workers, one sample per worker)."""
    return {int(labels["pid"]) for labels, _ in samples(url, "clara_workers")}


def per_worker_webhooks(directory: Path) -> dict[int, float]:
    """Answered webhook posts by worker, from each worker's own counter file."""
    name, labels = WEBHOOK_OK
    counts = {}
    for path in directory.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(path)])
        counts[int(path.stem.split("_")[1])] = sum(
            s.value
            for family in merged
            for s in family.samples
            if s.name == name and labels.items() <= s.labels.items()
        )
    return counts


def metrics_folder(pid: int) -> Path:
    """The folder of the metric files a worker has mapped into its memory."""
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = Path(line.split(maxsplit=5)[-1])
        if path.name.endswith(f"_{pid}.db"):
            return path.parent
    raise AssertionError(f"worker {pid} maps no metric file")


def post_messages(url: str, labels: list[str]) -> None:
    """Post one signed message per label, eight at a time, each on its own connection."""

    def post(label: str) -> None:
        form = whatsapp_form(f"hola {label}", sid=message_sid(label))
        headers = {**signed_headers(form), "Connection": "close"}
        response = httpx.post(url + "/webhook", data=form, headers=headers, timeout=15, verify=TLS)
        assert response.status_code == 200, response.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, labels))


def post_until_both_answered(url: str, directory: Path) -> int:
    """Post messages until both workers have answered some; return how many were posted."""
    sent = 0
    while sent < 400:
        post_messages(url, [f"m{sent + i}" for i in range(16)])
        sent += 16
        if len([n for n in per_worker_webhooks(directory).values() if n > 0]) == 2:
            return sent
    raise AssertionError(
        f"one worker answered all {sent} messages: {per_worker_webhooks(directory)}"
    )


def wait_for(condition: Callable[[], bool], budget: float = 20.0) -> None:
    deadline = time.monotonic() + budget
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def start_two_workers(start_bot: Callable[..., DevServer], directory: Path | None) -> DevServer:
    """The bot with two workers, once both have built their metrics (start_bot waits for the
    first /health to say ready: one worker's)."""
    env = {} if directory is None else {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    server = start_bot(env, TWO_WORKERS)
    wait_for(lambda: len(worker_pids(server.url)) == 2)
    return server


def test_every_fetch_of_metrics_counts_every_workers_requests(
    start_bot: Callable[..., DevServer], tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"  # not there yet: gunicorn makes it
    server = start_two_workers(start_bot, directory)
    sent = post_until_both_answered(server.url, directory)
    assert sum(per_worker_webhooks(directory).values()) == sent
    for _ in range(6):
        assert webhook_count(server.url) == sent
    pids = worker_pids(server.url)
    assert len(pids) == 2
    assert set(per_worker_webhooks(directory)) == pids
    # Each live worker's memory, read from its own /proc entry, labelled with its pid.
    memory = samples(server.url, "process_resident_memory_bytes")
    assert {int(labels["pid"]) for labels, _ in memory} == pids
    assert all(10e6 < value < 512e6 for _, value in memory)
    # The warm-up gauges merge into one sample each, as with one process.
    assert samples(server.url, "clara_warmup_ready") == [({}, 1.0)]
    assert [labels for labels, _ in samples(server.url, "clara_warmup_duration_seconds")] == [{}]


def test_a_killed_worker_takes_no_count_away(
    start_bot: Callable[..., DevServer], tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    server = start_two_workers(start_bot, directory)
    sent = post_until_both_answered(server.url, directory)
    before = worker_pids(server.url)
    killed = max(before, key=lambda pid: per_worker_webhooks(directory)[pid])
    os.kill(killed, signal.SIGKILL)
    # gunicorn reaps it (child_exit: its live gauges go) and starts another worker.
    wait_for(
        lambda: len(worker_pids(server.url) - before) == 1 and killed not in worker_pids(server.url)
    )
    for _ in range(6):
        assert webhook_count(server.url) == sent
    memory_pids = {
        int(labels["pid"]) for labels, _ in samples(server.url, "process_resident_memory_bytes")
    }
    assert killed not in memory_pids and len(memory_pids) == 2
    wait_for(lambda: samples(server.url, "clara_warmup_ready") == [({}, 1.0)])
    post_messages(server.url, ["after the kill"])
    assert webhook_count(server.url) == sent + 1


def test_several_workers_without_the_variable_get_a_folder_of_their_own(
    start_bot: Callable[..., DevServer],
) -> None:
    """gunicorn.conf.py names a fresh folder when several workers run, and removes it after."""
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    server = start_two_workers(start_bot, None)
    made = {metrics_folder(pid) for pid in worker_pids(server.url)}.pop()
    assert made.parent == Path(tempfile.gettempdir()) and made.name.startswith("clara-metrics-")
    sent = post_until_both_answered(server.url, made)
    for _ in range(6):
        assert webhook_count(server.url) == sent
    assert server.stop() == 0
    assert not made.exists()


def test_an_earlier_runs_counts_are_wiped_at_start(
    start_bot: Callable[..., DevServer], tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    name, labels = WEBHOOK_OK
    stale = MmapedDict(str(directory / "counter_999999.db"))
    key = mmap_key("clara_http_requests", name, list(labels), list(labels.values()), "HTTP")
    stale.write_value(key, 1000.0, 0.0)
    stale.close()
    (directory / "notes.txt").write_text("not the library's: kept")
    server = start_two_workers(start_bot, directory)
    post_messages(server.url, ["one", "two", "three"])
    assert webhook_count(server.url) == 3
    assert server.stop() == 0
    # A folder the operator named stays, with what is not the library's.
    assert (directory / "notes.txt").read_text() == "not the library's: kept"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("", "PROMETHEUS_MULTIPROC_DIR is set but empty: name a folder for the metrics"),
        ("{file}/metrics", "PROMETHEUS_MULTIPROC_DIR={file}/metrics: Not a directory: name a"),
    ],
)
def test_a_bad_folder_is_one_line_and_exit_2(tmp_path: Path, value: str, said: str) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    env = {**os.environ, **BASE_ENV, "PROMETHEUS_MULTIPROC_DIR": value.format(file=file)}
    server = DevServer(env, extra_args=TWO_WORKERS)
    with pytest.raises(DevServerError) as raised:
        server.start()
    assert raised.value.exit_code == ExitCode.USAGE
    assert f"clara: cannot start: {said.format(file=file)}" in str(raised.value)
    assert "Traceback" not in "\n".join(server.lines)


def test_opsctl_judges_the_sum_of_the_workers_memory(
    start_bot: Callable[..., DevServer], tmp_path: Path
) -> None:
    """Render kills the instance on all its processes' memory, not one worker's."""
    server = start_two_workers(start_bot, tmp_path / "metrics")
    per_worker = [value for _, value in samples(server.url, "process_resident_memory_bytes")]
    assert len(per_worker) == 2
    env = load_config(REPO_ROOT / "opsctl.toml", CHECKS).environments["local"]

    async def check() -> float:
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext("local", server.url, PUBLIC, env.expect, client, {})
            result = await MetricsCheck().run(ctx)
        assert result.status is Status.PASS, result.reason
        assert result.details["resident_memory_processes"] == 2
        assert "MB (2 workers together) of 512 MB" in result.reason
        return float(result.details["resident_memory_mb"])

    judged = asyncio.run(check())
    # Both workers, not the larger one alone (the memory moves a little between fetches).
    assert judged > 1.5 * max(per_worker) / 1e6
    assert judged == pytest.approx(sum(per_worker) / 1e6, rel=0.1)


def test_deploy_files_still_refuse_a_second_worker(deploy_repo: Path) -> None:  # noqa: F811
    """Multiprocess metrics do not lift the runbook's one worker: memory still does not fit."""
    assert deploy_files(deploy_repo).status is Status.PASS
    web_service(deploy_repo, set_env(GUNICORN_CMD_ARGS=TWO_WORKERS))
    result = deploy_files(deploy_repo)
    assert result.status is Status.FAIL
    assert result.reason == (
        "against the runbook: 2 gunicorn workers (GUNICORN_CMD_ARGS in render.yaml)"
    )


def test_one_worker_without_the_variable_is_one_registry_as_before(
    start_bot: Callable[..., DevServer],
) -> None:
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    server = start_bot()
    post_messages(server.url, ["alone"])
    assert webhook_count(server.url) == 1
    assert samples(server.url, "clara_workers") == [({}, 1.0)]
    ((labels, memory),) = samples(server.url, "process_resident_memory_bytes")
    assert labels == {} and 10e6 < memory < 512e6
