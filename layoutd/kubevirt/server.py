"""`layoutd kubevirt serve`: KubeVirt's hook API v1alpha3 on a unix socket.

virt-launcher asks every socket in /var/run/kubevirt-hooks for `Info` (name, versions, hook
points), calls `OnDefineDomain` before it defines the domain (one minute allowed) and again on a
migration target (where only an error counts), and `Shutdown` when the VM ends. Any error status
stops the VM (or the migration): FAILED_PRECONDITION for a proven collision, INVALID_ARGUMENT for
input that cannot be read, UNAVAILABLE when the host could not be asked, INTERNAL for a bug.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from layoutd.errors import InputError, LayoutdError
from layoutd.kubevirt.define import Decision, on_define_domain
from layoutd.kubevirt.hookapi import HookApi, load

NAME = "layoutd"
VERSION = "v1alpha3"
HOOK_POINTS = ("OnDefineDomain", "Shutdown")
STATUS = {1: "FAILED_PRECONDITION", 2: "INVALID_ARGUMENT", 3: "UNAVAILABLE"}
GRACE = 5.0  # seconds a call in flight may finish after Shutdown
TIMEOUT = 50.0  # seconds for one judgement: virt-launcher allows OnDefineDomain one minute


def log(message: str) -> None:
    print(f"layoutd kubevirt serve: {message}", file=sys.stderr, flush=True)


def serve(socket_path: str, host: str, qemu_version: str | None = None,
          ready: Callable[[], None] | None = None, timeout: float = TIMEOUT) -> int:
    """Serve until Shutdown, SIGTERM or SIGINT; the socket is removed at the end."""
    api = load()
    _claim(socket_path)
    done = threading.Event()
    server = api.grpc.server(ThreadPoolExecutor(max_workers=2))
    api.info_grpc.add_InfoServicer_to_server(_info(api), server)
    judge = Judge(host, qemu_version, timeout)
    api.v1alpha3_grpc.add_CallbacksServicer_to_server(_callbacks(api, judge, done), server)
    try:
        server.add_insecure_port(f"unix:{os.path.abspath(socket_path)}")
    except RuntimeError as error:
        raise InputError(f"cannot listen there: {error}", file=socket_path) from error
    server.start()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: done.set())
    log(f"serving KubeVirt's hook API {VERSION} on {socket_path} (host {host})")
    if ready:
        ready()
    while not done.wait(0.5):
        pass
    server.stop(GRACE).wait()
    _remove(socket_path)
    log("stopped")
    return 0


def _claim(path: str) -> None:
    """The socket's folder must exist; a stale socket is replaced, any other file is not."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"the folder {folder} does not exist", file=path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InputError("exists and is not a socket; refusing to replace it", file=path)
    os.unlink(path)


def _remove(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass


def _info(api: HookApi) -> Any:
    class Info(api.info_grpc.InfoServicer):  # type: ignore[misc, name-defined]
        def Info(self, request: Any, context: Any) -> Any:
            points = [api.info.HookPoint(name=name, priority=0) for name in HOOK_POINTS]
            return api.info.InfoResult(name=NAME, versions=[VERSION], hookPoints=points)

    return Info()


class Judge:
    """Each OnDefineDomain judged in a thread of its own, answered within `timeout` seconds. The
    thread is a daemon: one stuck past its time (a host file that never answers) is left behind
    and does not keep the server from stopping."""

    def __init__(self, host: str, qemu_version: str | None, timeout: float) -> None:
        self.host, self.qemu_version, self.timeout = host, qemu_version, timeout

    def __call__(self, vmi: bytes, domain: bytes) -> Decision | tuple[str, str]:
        outcome: list[Decision | tuple[str, str]] = []
        worker = threading.Thread(target=lambda: outcome.append(
            decide(vmi, domain, self.host, self.qemu_version)), name="judge", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if outcome:
            return outcome[0]
        message = f"the judgement did not finish within {self.timeout:g} s (--timeout)"
        log(f"OnDefineDomain refused: {message}")
        return "UNAVAILABLE", f"layoutd: {message}"


def _callbacks(api: HookApi, judge: Judge, done: threading.Event) -> Any:
    messages = api.v1alpha3

    class Callbacks(api.v1alpha3_grpc.CallbacksServicer):  # type: ignore[misc, name-defined]
        def OnDefineDomain(self, request: Any, context: Any) -> Any:
            outcome = judge(request.vmi, request.domainXML)
            if isinstance(outcome, Decision):
                return messages.OnDefineDomainResult(domainXML=outcome.xml)
            code, message = outcome
            context.abort(getattr(api.grpc.StatusCode, code), message)

        def PreCloudInitIso(self, request: Any, context: Any) -> Any:
            """Not subscribed; should virt-launcher call it anyway, the data passes unchanged."""
            return messages.PreCloudInitIsoResult(
                cloudInitNoCloudSource=request.cloudInitNoCloudSource,
                cloudInitData=request.cloudInitData)

        def Shutdown(self, request: Any, context: Any) -> Any:
            log("Shutdown called")
            done.set()
            return messages.ShutdownResult()

    return Callbacks()


def decide(vmi: bytes, domain: bytes, host: str, qemu_version: str | None
           ) -> Decision | tuple[str, str]:
    """The decision, or (gRPC status name, message) for an error; every outcome logged."""
    try:
        decision = on_define_domain(vmi, domain, host, qemu_version)
    except LayoutdError as error:
        log(f"OnDefineDomain refused: {error.render()}")
        return STATUS.get(error.exit_code, "INTERNAL"), f"layoutd: {error.render()}"
    except Exception as error:  # a bug must stop this VM with a message, not the server
        log(f"OnDefineDomain internal error: {type(error).__name__}: {error}")
        return "INTERNAL", f"layoutd: internal error: {type(error).__name__}: {error}"
    for note in decision.notes:
        log(f"OnDefineDomain: {note}")
    return decision
