"""Emitters: QEMU argv, QMP commands, libvirt XML, text tables and pictures."""
