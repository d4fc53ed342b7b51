"""The Beam parse stage (``run``: the pipeline and the parse task; ``transforms``: its DoFns).

Beam warns at import about optional GCP clients pubmine never uses (the GCS filesystem, apitools),
one of them on the root logger. Those two lines are held back while Beam is first imported, and the
filter is removed again: nothing in the process's logging is changed for later.
"""

import contextlib
import logging


class _OptionalGcpNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Failed to import GCSFileSystem") or msg.startswith("apitools not found"))


@contextlib.contextmanager
def _quiet_optional_gcp_imports():
    noise = _OptionalGcpNoise()
    loggers = (logging.getLogger(), logging.getLogger("apache_beam.io.filesystems"))
    for logger in loggers:
        logger.addFilter(noise)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)


with _quiet_optional_gcp_imports():
    import apache_beam  # noqa: F401  (imported here once, so its import-time warnings are the filtered ones)
    import apache_beam.io.filesystems  # noqa: F401
