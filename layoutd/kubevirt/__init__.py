"""KubeVirt's OnDefineDomain hook: the domain virt-launcher is about to define, judged and fixed
for the node's IOMMU (`define.py`), and the v1alpha3 gRPC hook server (`server.py`, needs the
`kubevirt` extra: grpcio and grpcio-tools; the messages are compiled at start from the .proto
files in `hookapi/`)."""
