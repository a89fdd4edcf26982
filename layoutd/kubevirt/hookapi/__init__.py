"""KubeVirt's hook API (info and v1alpha3), compiled from the .proto files beside this module.

No generated code is kept in the repository: grpcio-tools compiles the .proto files when the
server starts (`grpc.protos_and_services`), with the protobuf runtime that is installed, so the
messages cannot drift from the .proto and no generated file pins a protobuf version. Both need
the `kubevirt` extra (`pip install 'layoutd[kubevirt]'`: grpcio, grpcio-tools).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from layoutd.errors import InputError

PROTOS = ("layoutd/kubevirt/hookapi/info.proto", "layoutd/kubevirt/hookapi/v1alpha3.proto")
EXTRA = ("`layoutd kubevirt serve` needs grpcio and grpcio-tools, which layoutd installs only "
         "with its `kubevirt` extra: pip install 'layoutd[kubevirt]'")


class HookApi:
    """The compiled modules: messages (`info`, `v1alpha3`) and services (`info_grpc`,
    `v1alpha3_grpc`), and grpc itself."""

    def __init__(self, grpc: Any, info: Any, info_grpc: Any, v1alpha3: Any, v1alpha3_grpc: Any):
        self.grpc, self.info, self.info_grpc = grpc, info, info_grpc
        self.v1alpha3, self.v1alpha3_grpc = v1alpha3, v1alpha3_grpc


def load() -> HookApi:
    """Compile the .proto files (about 0.3 s); InputError (exit 2) when grpc is missing."""
    try:
        import grpc  # an optional extra (layoutd[kubevirt]), for `kubevirt serve` only
        import grpc_tools  # noqa: F401  (protos_and_services needs it; say so before it fails)
    except ImportError as error:
        raise InputError(f"{EXTRA} ({error})") from error
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))  # the folder holding the layoutd package
    if root not in sys.path:
        sys.path.append(root)  # grpc finds .proto files relative to sys.path
    info, info_grpc = grpc.protos_and_services(PROTOS[0])
    v1alpha3, v1alpha3_grpc = grpc.protos_and_services(PROTOS[1])
    return HookApi(grpc, info, info_grpc, v1alpha3, v1alpha3_grpc)
