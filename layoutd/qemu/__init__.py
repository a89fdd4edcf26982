"""Models of how QEMU lays out guest-physical memory, per machine type and version."""
