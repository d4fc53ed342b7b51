"""The Beam parse stage. Importing it quiets two warnings Beam prints at import about optional GCP
clients pubmine never uses (GCS filesystem, apitools); every other Beam message is kept."""

import logging


class _OptionalGcpNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Failed to import GCSFileSystem") or msg.startswith("apitools not found"))


logging.getLogger("apache_beam.io.filesystems").addFilter(_OptionalGcpNoise())
logging.getLogger().addFilter(_OptionalGcpNoise())
