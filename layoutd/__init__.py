"""layoutd: plan guest memory layouts that every VFIO device's IOMMU can map."""

__version__ = "0.1.0"
