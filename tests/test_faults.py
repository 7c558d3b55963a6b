"""The sandbox's injected faults, and applies that converge through them.

Every test serves the sandbox on 127.0.0.1 with a fault config and drives the real
client or the apply command in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from typing import TypeVar

import pytest
from resilience import API_KEY
from resilience import apply_in_process
from resilience import find_inconsistencies
from resilience import sandbox_settings
from resilience import store_records
from resilience import write_estate

from reconciler import cli
from reconciler.mynotary.adapter import PROGRAMME_TYPE
from reconciler.mynotary.client import NO_RETRY
from reconciler.mynotary.client import MyNotaryClient
from reconciler.mynotary.client import MyNotaryError
from reconciler.mynotary.client import RetryPolicy
from reconciler.sandbox.faults import Fault
from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.faults import FaultConfigError
from reconciler.sandbox.faults import RetryAfterFormat
from reconciler.sandbox.faults import load_fault_config
from reconciler.sandbox.server import DEFAULT_HOST
from reconciler.sandbox.server import running_sandbox

T = TypeVar("T")

SEEDS = range(50)

# Bounds of one seed's run: applies, requests and seconds. A run that needs more
# has a bug (a retry loop or an apply that never converges).
MAX_APPLIES = 30
MAX_REQUESTS = 3000
MAX_SECONDS = 60.0

RANDOM_FAULTS = {
    "error_rate": 0.20,
    "throttle_rate": 0.10,
    "ambiguous_rate": 0.05,
    "drop_rate": 0.02,
    "retry_after": 0,
}


def run_client(
    url: str,
    action: Callable[[MyNotaryClient], Coroutine[Any, Any, T]],
    **options: Any,
) -> T:
    async def run() -> T:
        async with MyNotaryClient(
            url, organization_id=1, creator_id=1, api_key=API_KEY, **options
        ) as client:
            return await action(client)

    return asyncio.run(run())


def create_programme(reference: str) -> Callable[[MyNotaryClient], Any]:
    async def create(client: MyNotaryClient) -> dict[str, Any]:
        return await client.create_record(
            PROGRAMME_TYPE, {"nom_programme": reference}, external_reference=reference
        )

    return create


# Fault config


def test_faults_config_file(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text(
        "seed: 7\nerror-rate: 0.2\nretry-after-format: date\n", encoding="utf-8"
    )

    config = load_fault_config(path, {"seed": 9, "latency": None})

    assert config.seed == 9
    assert config.error_rate == 0.2
    assert config.retry_after_format is RetryAfterFormat.DATE
    assert config.latency == 0.0


def test_faults_config_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("error_rate: 0.2\n", encoding="utf-8")

    with pytest.raises(FaultConfigError) as caught:
        load_fault_config(path)

    assert str(caught.value).startswith(
        f"fault config {path}: unknown option 'error_rate'; expected one of"
    )


def test_faults_config_rates_over_one() -> None:
    with pytest.raises(FaultConfigError) as caught:
        FaultConfig(error_rate=0.6, throttle_rate=0.5)

    assert str(caught.value) == (
        "error-rate, throttle-rate, hang-rate, drop-rate, ambiguous-rate must add"
        " up to at most 1"
    )


def test_faults_config_no_object_construction(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("seed: !!python/object/apply:os.getpid []\n", encoding="utf-8")

    with pytest.raises(FaultConfigError):
        load_fault_config(path)


def test_faults_listen_on_loopback() -> None:
    host = next(param for param in cli.serve.params if param.name == "host")

    assert DEFAULT_HOST == "127.0.0.1"
    assert host.default == "127.0.0.1"


# Each fault, seen by the client


def test_faults_same_seed_same_faults(tmp_path: Path) -> None:
    config = FaultConfig(seed=3, error_rate=0.3, throttle_rate=0.2, retry_after=0)
    counts = []
    for run in range(2):
        with running_sandbox(tmp_path / f"{run}.db", API_KEY, config) as sandbox:
            for index in range(20):
                with contextlib.suppress(MyNotaryError):
                    run_client(
                        sandbox.url, lambda c, i=index: c.get_record(i), retry=NO_RETRY
                    )
            assert sandbox.injector is not None
            counts.append(dict(sandbox.injector.counts))

    assert counts[0] == counts[1]
    assert counts[0][Fault.NONE] < 20


def test_faults_server_error_retried(tmp_path: Path) -> None:
    config = FaultConfig(seed=1, error_rate=0.5)
    policy = RetryPolicy(max_retries=20, backoff=0.01, max_backoff=0.02)
    with running_sandbox(tmp_path / "db", API_KEY, config) as sandbox:
        lists = [
            run_client(
                sandbox.url, lambda client: client.list_programmes(), retry=policy
            )
            for _ in range(10)
        ]
        assert sandbox.injector is not None
        errors = sandbox.injector.counts[Fault.SERVER_ERROR]

    assert lists == [[]] * 10
    assert errors >= 1


def test_faults_retry_after_date(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = FaultConfig(
        throttle_rate=1.0, retry_after=1, retry_after_format=RetryAfterFormat.DATE
    )
    policy = RetryPolicy(max_retries=1, max_wait=5.0)
    with (
        running_sandbox(tmp_path / "db", API_KEY, config) as sandbox,
        caplog.at_level(logging.INFO, logger="reconciler.mynotary.client"),
        pytest.raises(MyNotaryError) as caught,
    ):
        run_client(sandbox.url, lambda client: client.get_record(1), retry=policy)

    waits = [
        float(record.getMessage().split("waiting ")[1].split(" s")[0])
        for record in caplog.records
        if record.getMessage().startswith("retrying ")
    ]
    assert caught.value.status_code == 429
    assert len(waits) == 1
    # An HTTP date has whole seconds, so 1 s ahead is between 0 and 1 s away.
    assert 0.0 <= waits[0] <= 1.0


def test_faults_hang_times_out(tmp_path: Path) -> None:
    config = FaultConfig(hang_rate=1.0, hang_seconds=1.0)
    with (
        running_sandbox(tmp_path / "db", API_KEY, config) as sandbox,
        pytest.raises(MyNotaryError) as caught,
    ):
        run_client(
            sandbox.url,
            lambda client: client.get_record(1),
            timeout=0.2,
            retry=NO_RETRY,
        )

    assert str(caught.value) == (
        "MyNotary request GET /records/1 failed: timed out after 0.2 s"
    )


def test_faults_drop_not_repeated_create(tmp_path: Path) -> None:
    config = FaultConfig(seed=0, drop_rate=1.0)
    with (
        running_sandbox(tmp_path / "db", API_KEY, config) as sandbox,
        pytest.raises(MyNotaryError) as caught,
    ):
        run_client(sandbox.url, create_programme("PRG-1"), retry=NO_RETRY)

    assert caught.value.status_code is None
    assert caught.value.is_outcome_unknown
    assert "RemoteProtocolError" in str(caught.value)


def test_faults_ambiguous_create_adopted(tmp_path: Path) -> None:
    # Every write is committed and gets a 504 response, and no read fails.
    config = FaultConfig(ambiguous_rate=1.0)
    policy = RetryPolicy(max_retries=2, backoff=0.01)
    database = tmp_path / "db"
    with running_sandbox(database, API_KEY, config) as sandbox:
        record = run_client(sandbox.url, create_programme("PRG-1"), retry=policy)
        assert sandbox.injector is not None
        commits = sandbox.injector.counts[Fault.COMMIT_THEN_504]

    assert record["externalReference"] == "PRG-1"
    assert commits == 1
    assert len(store_records(database)) == 1


def test_faults_short_page_detected(tmp_path: Path) -> None:
    config = FaultConfig(list_short_page=2)
    database = tmp_path / "db"
    with running_sandbox(database, API_KEY, config) as sandbox:
        for index in range(5):
            run_client(sandbox.url, create_programme(f"PRG-{index}"))
        with pytest.raises(MyNotaryError) as caught:
            run_client(
                sandbox.url, lambda client: client.list_programmes(), page_size=2
            )

    assert "returned 3 records but its total is 5" in str(caught.value)


# Applies that converge through random faults


@pytest.mark.parametrize("seed", SEEDS)
def test_faults_apply_converges(tmp_path: Path, seed: int) -> None:
    manifests = write_estate(tmp_path / "manifests", programmes=2, lots=10)
    links_path = tmp_path / "state" / "links.yaml"
    database = tmp_path / "sandbox.db"
    config = FaultConfig(seed=seed, **RANDOM_FAULTS)

    with running_sandbox(database, API_KEY, config) as sandbox:
        settings = sandbox_settings(sandbox.url, links_path)
        started = time.monotonic()
        codes = []
        while len(codes) < MAX_APPLIES and time.monotonic() - started < MAX_SECONDS:
            codes.append(apply_in_process(settings, tmp_path / "manifests").code)
            if codes[-1] == 0:
                break
        assert sandbox.injector is not None
        requests = sandbox.injector.requests

    assert codes[-1] == 0, f"no apply succeeded in {len(codes)} runs"
    assert set(codes) <= {0, 1}
    assert requests <= MAX_REQUESTS
    assert find_inconsistencies(database, manifests, links_path, settings) == []
