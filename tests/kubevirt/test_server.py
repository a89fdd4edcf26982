"""`layoutd kubevirt serve --socket PATH`: KubeVirt's hook API v1alpha3 over a unix socket, asked
by a client generated from the same .proto files, and by raw bytes on KubeVirt's method paths
(the wire format, independent of those files)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from layoutd.errors import InputError
from layoutd.kubevirt.hookapi import HookApi, load
from tests.conftest import ROOT, need
from tests.kubevirt.domains import AMD, MIGRATING, NARROW, domain, stuck_host, vmi

START = 60.0


@pytest.fixture(scope="module")
def api() -> HookApi:
    """The compiled hook API; grpcio and grpcio-tools come with the test extra."""
    try:
        return load()
    except InputError as error:
        need(False, f"{error.message} (scripts/install.sh test)")
        raise


class Server:
    def __init__(self, process: subprocess.Popen[bytes], socket: Path, log: Path) -> None:
        self.process, self.socket, self.log = process, socket, log

    def channel(self) -> Any:
        return load().grpc.insecure_channel(f"unix:{self.socket}")


@contextmanager
def serving(folder: Path, host: str, *options: str) -> Iterator[Server]:
    socket, log = folder / "layoutd.sock", folder / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "layoutd.cli", "kubevirt", "serve", "--socket", str(socket),
             "--host", host, *options], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    server = Server(process, socket, log)
    try:
        deadline = time.monotonic() + START
        while not socket.exists():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def test_the_messages_are_kubevirts_wire_format(api: HookApi) -> None:
    """Field numbers and types as KubeVirt publishes them, checked on the bytes."""
    params = api.v1alpha3.OnDefineDomainParams(domainXML=b"<d/>", vmi=b"{}")
    assert params.SerializeToString() == b"\x0a\x04<d/>\x12\x02{}"
    cloud = api.v1alpha3.PreCloudInitIsoResult(cloudInitNoCloudSource=b"a", cloudInitData=b"b")
    assert cloud.SerializeToString() == b"\x0a\x01a\x1a\x01b"
    info = api.info.InfoResult(name="n", versions=["v"],
                               hookPoints=[api.info.HookPoint(name="p", priority=7)])
    assert info.SerializeToString() == b"\x0a\x01n\x1a\x05\x0a\x01p\x10\x07\x22\x01v"
    services = {service.full_name: [(m.name, m.input_type.full_name, m.output_type.full_name)
                                    for m in service.methods]
                for module in (api.info, api.v1alpha3)
                for service in module.DESCRIPTOR.services_by_name.values()}
    assert services == {
        "kubevirt.hooks.info.Info": [("Info", "kubevirt.hooks.info.InfoParams",
                                      "kubevirt.hooks.info.InfoResult")],
        "kubevirt.hooks.v1alpha3.Callbacks": [
            ("OnDefineDomain", "kubevirt.hooks.v1alpha3.OnDefineDomainParams",
             "kubevirt.hooks.v1alpha3.OnDefineDomainResult"),
            ("PreCloudInitIso", "kubevirt.hooks.v1alpha3.PreCloudInitIsoParams",
             "kubevirt.hooks.v1alpha3.PreCloudInitIsoResult"),
            ("Shutdown", "kubevirt.hooks.v1alpha3.ShutdownParams",
             "kubevirt.hooks.v1alpha3.ShutdownResult")]}


def test_info_names_the_hook_points(api: HookApi, tmp_path: Path) -> None:
    with serving(tmp_path, AMD) as server, server.channel() as channel:
        info = api.info_grpc.InfoStub(channel).Info(api.info.InfoParams(), timeout=10)
        assert info.name == "layoutd" and list(info.versions) == ["v1alpha3"]
        assert [(p.name, p.priority) for p in info.hookPoints] == [("OnDefineDomain", 0),
                                                                   ("Shutdown", 0)]
        raw = channel.unary_unary("/kubevirt.hooks.info.Info/Info")(b"", timeout=10)
        assert raw == info.SerializeToString()


def test_on_define_domain_returns_what_the_shim_prints(api: HookApi, tmp_path: Path) -> None:
    """The same fixed domain as `on-define-domain` prints, byte for byte; also on the raw path
    /kubevirt.hooks.v1alpha3.Callbacks/OnDefineDomain with hand-made bytes."""
    shim = subprocess.run([sys.executable, "-m", "layoutd.cli", "kubevirt", "on-define-domain",
                           "--vmi", vmi(), "--domain", domain(AMD), "--host", AMD],
                          capture_output=True, cwd=ROOT, timeout=120)
    assert shim.returncode == 0, shim.stderr
    with serving(tmp_path, AMD) as server, server.channel() as channel:
        stub = api.v1alpha3_grpc.CallbacksStub(channel)
        params = api.v1alpha3.OnDefineDomainParams(domainXML=domain(AMD).encode(),
                                                   vmi=vmi().encode())
        result = stub.OnDefineDomain(params, timeout=60)
        assert result.domainXML == shim.stdout
        assert b"base='0x10000000000'" in result.domainXML
        xml, vmi_json = domain(AMD).encode(), vmi().encode()
        wire = (b"\x0a" + varint(len(xml)) + xml + b"\x12" + varint(len(vmi_json)) + vmi_json)
        raw = channel.unary_unary("/kubevirt.hooks.v1alpha3.Callbacks/OnDefineDomain")(
            wire, timeout=60)
        assert raw == b"\x0a" + varint(len(shim.stdout)) + shim.stdout
    assert "gpu-team/llm-trainer: domain fixed for this node" in server.log.read_text()


def varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def test_a_collision_and_bad_input_are_errors_kubevirt_sees(api: HookApi, tmp_path: Path) -> None:
    """virt-launcher stops the VM on any error status: a proven collision is
    FAILED_PRECONDITION naming the hole, unreadable input INVALID_ARGUMENT; a migration target
    where a layout fits gets its domain back unchanged, one where none does an error."""
    with serving(tmp_path, NARROW) as server, server.channel() as channel:
        stub = api.v1alpha3_grpc.CallbacksStub(channel)
        for status in ({}, MIGRATING):
            with pytest.raises(api.grpc.RpcError) as refused:
                stub.OnDefineDomain(api.v1alpha3.OnDefineDomainParams(
                    domainXML=domain(NARROW).encode(), vmi=vmi(**status).encode()), timeout=60)
            assert refused.value.code() == api.grpc.StatusCode.FAILED_PRECONDITION
            assert "above the IOMMU's top 0x8000000000-0xffffffffffffffff" in refused.value.details()
        with pytest.raises(api.grpc.RpcError) as broken:
            stub.OnDefineDomain(api.v1alpha3.OnDefineDomainParams(
                domainXML=domain(NARROW).encode(), vmi=b"{"), timeout=60)
        assert broken.value.code() == api.grpc.StatusCode.INVALID_ARGUMENT
        assert "--vmi: not a JSON document" in broken.value.details()
    with serving(tmp_path, AMD) as server, server.channel() as channel:
        stub = api.v1alpha3_grpc.CallbacksStub(channel)
        given = domain(AMD).encode()
        result = stub.OnDefineDomain(api.v1alpha3.OnDefineDomainParams(
            domainXML=given, vmi=vmi(**MIGRATING).encode()), timeout=60)
        assert result.domainXML == given


def test_a_judgement_that_cannot_finish_is_unavailable(api: HookApi, tmp_path: Path) -> None:
    """A host read that never returns: UNAVAILABLE at --timeout, within virt-launcher's minute,
    and the server still answers Info afterwards."""
    with serving(tmp_path, stuck_host(tmp_path), "--timeout", "1") as server, \
            server.channel() as channel:
        with pytest.raises(api.grpc.RpcError) as late:
            api.v1alpha3_grpc.CallbacksStub(channel).OnDefineDomain(
                api.v1alpha3.OnDefineDomainParams(domainXML=domain(AMD).encode(),
                                                  vmi=vmi().encode()), timeout=60)
        assert late.value.code() == api.grpc.StatusCode.UNAVAILABLE
        assert "did not finish within 1 s" in late.value.details()
        info = api.info_grpc.InfoStub(channel).Info(api.info.InfoParams(), timeout=10)
        assert info.name == "layoutd"


def test_shutdown_stops_the_server_and_removes_the_socket(api: HookApi, tmp_path: Path) -> None:
    with serving(tmp_path, AMD) as server:
        with server.channel() as channel:
            api.v1alpha3_grpc.CallbacksStub(channel).Shutdown(api.v1alpha3.ShutdownParams(),
                                                              timeout=10)
        assert server.process.wait(timeout=30) == 0
        assert not server.socket.exists()
        assert "Shutdown called" in server.log.read_text()


def test_a_socket_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a socket")
    result = subprocess.run([sys.executable, "-m", "layoutd.cli", "kubevirt", "serve", "--socket",
                             str(taken), "--host", AMD], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "exists and is not a socket" in result.stderr
    assert taken.read_text() == "not a socket" and "Traceback" not in result.stderr
