"""Security: the API key never leaves its header, TLS is verified, YAML builds no
objects, and manifests are read only under the folders given."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from conftest import clean_environment
from resilience import API_KEY
from resilience import write_estate

from reconciler.config import TargetOptions
from reconciler.config import resolve_settings
from reconciler.errors import ConfigurationError
from reconciler.errors import ManifestError
from reconciler.links import LinkTable
from reconciler.links import TargetIdentity
from reconciler.manifest import find_manifest_files
from reconciler.manifest import load_manifests
from reconciler.mynotary.client import NO_RETRY
from reconciler.mynotary.client import MyNotaryClient
from reconciler.mynotary.client import MyNotaryError
from reconciler.sandbox.app import create_app
from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.server import running_sandbox
from reconciler.sandbox.store import RecordStore

# Seconds a subprocess may run before the test fails instead of hanging.
PROCESS_TIMEOUT = 120

FAULTS = FaultConfig(
    seed=5, error_rate=0.2, throttle_rate=0.1, ambiguous_rate=0.1, retry_after=0
)


def run_cli(workdir: Path, *arguments: str, **environment: str) -> str:
    """Run ``reconciler ARGUMENTS`` in ``workdir``; return its stdout and stderr."""
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("reconciler")), *arguments],
        cwd=workdir,
        env=clean_environment(**environment),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    return completed.stdout + completed.stderr


def files_containing(folder: Path, text: str) -> list[Path]:
    needle = text.encode("utf-8")
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    ]


def test_secrets_key_nowhere(tmp_path: Path) -> None:
    write_estate(tmp_path / "manifests", programmes=2, lots=5)
    key_file = tmp_path / "key.txt"
    key_file.write_text(API_KEY + "\n", encoding="utf-8")
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.move(tmp_path / "manifests", workdir / "manifests")
    outputs = []

    with running_sandbox(tmp_path / "sandbox.db", API_KEY, FAULTS) as sandbox:
        target = ["--url", sandbox.url, "--organization", "1", "--user", "1"]
        target += ["--links", "state/links.yaml", "--max-retries", "8"]
        with_key = {"MYNOTARY_API_KEY": API_KEY}
        outputs.append(run_cli(workdir, "--debug", "plan", *target, **with_key))
        outputs.append(
            run_cli(workdir, "plan", *target, "--out", "plan.json", **with_key)
        )
        for _ in range(3):
            outputs.append(
                run_cli(
                    workdir,
                    "-v",
                    "apply",
                    "--auto-approve",
                    *target,
                    MYNOTARY_API_KEY_FILE=str(key_file),
                )
            )
        outputs.append(run_cli(workdir, "-v", "status", *target, **with_key))

    written = [path.name for path in workdir.rglob("*") if path.is_file()]
    assert "links.audit.jsonl" in written
    assert "plan.json" in written
    assert "Apply finished" in "".join(outputs)
    assert [output for output in outputs if API_KEY in output] == []
    assert files_containing(workdir, API_KEY) == []


def test_secrets_key_rejected_nowhere(tmp_path: Path) -> None:
    write_estate(tmp_path / "manifests", programmes=1, lots=2)

    with running_sandbox(tmp_path / "sandbox.db", "the-server-key") as sandbox:
        output = run_cli(
            tmp_path,
            "--debug",
            "apply",
            "--auto-approve",
            *("--url", sandbox.url, "--organization", "1", "--user", "1"),
            MYNOTARY_API_KEY=API_KEY,
        )

    assert "status 401" in output
    assert API_KEY not in output
    assert files_containing(tmp_path, API_KEY) == []


def test_secrets_key_echoed_by_server_redacted() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        echoed = f"bad header x-api-key: {request.headers['x-api-key']}"
        return httpx.Response(500, json={"error": "oops", "message": echoed})

    async def read() -> object:
        async with MyNotaryClient(
            "https://mynotary.test",
            organization_id=1,
            creator_id=1,
            api_key=API_KEY,
            transport=httpx.MockTransport(handle),
            retry=NO_RETRY,
        ) as client:
            return await client.get_record(1)

    with pytest.raises(MyNotaryError) as caught:
        asyncio.run(read())

    assert str(caught.value) == (
        "MyNotary request GET /records/1 failed with status 500:"
        " bad header x-api-key: ***"
    )


def test_secrets_no_key_flag(tmp_path: Path) -> None:
    output = run_cli(tmp_path, "plan", "--api-key", API_KEY)

    assert "No such option '--api-key'" in output


# TLS


def test_secrets_plain_http_remote_rejected() -> None:
    options = TargetOptions(url="http://mynotary.example/api", organization_id=1)

    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(options, {"MYNOTARY_USER_ID": "1"})

    assert str(caught.value) == (
        "MyNotary URL 'http://mynotary.example/api' uses plain http to a remote"
        " host; use https"
    )


@contextmanager
def tls_sandbox(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serve the sandbox over TLS on 127.0.0.1 with a self-signed certificate."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    certificate = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes"),
            *("-keyout", str(key), "-out", str(certificate), "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    with RecordStore() as store, closing(listener):
        config = uvicorn.Config(
            create_app(store),
            lifespan="off",
            log_level="warning",
            ssl_certfile=str(certificate),
            ssl_keyfile=str(key),
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, daemon=True
        )
        thread.start()
        while not server.started:
            time.sleep(0.01)
        try:
            yield f"https://127.0.0.1:{listener.getsockname()[1]}", certificate
        finally:
            server.should_exit = True
            thread.join()


def read_programmes(url: str) -> object:
    async def read() -> object:
        async with MyNotaryClient(
            url, organization_id=1, creator_id=1, retry=NO_RETRY
        ) as client:
            return await client.list_programmes()

    return asyncio.run(read())


def test_secrets_tls_verified(tmp_path: Path) -> None:
    with tls_sandbox(tmp_path) as (url, _), pytest.raises(MyNotaryError) as caught:
        read_programmes(url)

    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert not caught.value.is_transient


def test_secrets_tls_ca_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tls_sandbox(tmp_path) as (url, certificate):
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
        programmes = read_programmes(url)

    assert programmes == []


# YAML and manifest paths


def test_secrets_manifest_tag_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "constructed"
    manifest = tmp_path / "manifests" / "evil.yaml"
    manifest.parent.mkdir()
    manifest.write_text(
        f"!!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8"
    )

    with pytest.raises(ManifestError):
        load_manifests([manifest.parent])

    assert not marker.exists()


def test_secrets_link_table_tag_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "constructed"
    table = tmp_path / "links.yaml"
    table.write_text(
        f"version: !!python/object/apply:os.system ['touch {marker}']\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigurationError):
        LinkTable.load(table, TargetIdentity("https://mynotary.test", 1))

    assert not marker.exists()


def test_secrets_symlink_outside_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    [inside] = write_estate(tmp_path / "manifests", programmes=1, lots=2)
    outside = tmp_path / "elsewhere" / "secret.yaml"
    outside.parent.mkdir()
    outside.write_text("apiVersion: v1\n", encoding="utf-8")
    link = tmp_path / "manifests" / "link.yaml"
    link.symlink_to(outside)

    with caplog.at_level(logging.WARNING, logger="reconciler.manifest"):
        found = find_manifest_files([tmp_path / "manifests"])

    assert found == [inside]
    assert caplog.messages == [
        f"skipped {link}: it is a symbolic link to {outside}, outside"
        f" {tmp_path / 'manifests'}"
    ]


def test_secrets_symlink_inside_kept(tmp_path: Path) -> None:
    [inside] = write_estate(tmp_path / "manifests", programmes=1, lots=2)
    link = tmp_path / "manifests" / "again.yaml"
    link.symlink_to(inside)

    found = find_manifest_files([tmp_path / "manifests"])

    assert found == [link, inside]
