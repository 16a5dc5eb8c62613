"""OpenESD: the ESD API on your own machines."""

__version__ = "0.1.0"
ESD_API_VERSION = "1.5.0"
