"""libvirt: read a domain's XML safely, turn it into the argv libvirt gives QEMU, edit it in place."""
