"""Host readers: iommufd, VFIO type1, sysfs tree and dump, all returning the same host model."""
