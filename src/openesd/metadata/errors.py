"""Errors of the metadata layer."""

from openesd.errors import ConfigurationError


class SchemaTooNew(ConfigurationError):
    """The database was migrated by a newer OpenESD than this one."""
