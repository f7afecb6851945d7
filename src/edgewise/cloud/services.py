"""What the cloud's API and its background workers share, opened once per process from the settings.

:func:`edgewise.cloud.app.create_app` keeps one :class:`CloudServices` in ``app.state.services`` for the routes,
and :func:`edgewise.cloud.server.serve` hands the same object to the workers it starts, so both sides work on
one database engine, one certificate authority, one artifact store and one secret sealer.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.components import ArtifactStore, open_artifact_store
from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.identity import CertificateAuthority, load_or_create_ca
from edgewise.cloud.jobs.secrets import SecretSealer
from edgewise.cloud.settings import CloudSettings


@dataclass(frozen=True)
class CloudServices:
    """The long-lived objects behind the API and the workers; :meth:`open` builds them from settings."""

    settings: CloudSettings
    #: The database engine; whoever opened the services disposes of it when the API stops.
    engine: sa.Engine
    sessions: sessionmaker[Session]
    certificate_authority: CertificateAuthority
    secret_sealer: SecretSealer
    artifact_store: ArtifactStore

    @classmethod
    def open(cls, settings: CloudSettings) -> CloudServices:
        """Connect to the database and load (or create) the CA, the sealing key and the artifact store. Blocks.

        Raises:
            EdgewiseError: the CA or the sealing key cannot be loaded or created.
            ValueError: the artifact store setting is not a store URL.
        """
        engine = create_database_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=create_session_factory(engine),
            certificate_authority=load_or_create_ca(settings.data_dir),
            secret_sealer=SecretSealer.load_or_create(settings.data_dir),
            artifact_store=open_artifact_store(
                settings.artifact_store,
                data_dir=settings.data_dir,
                endpoint_url=settings.artifact_store_endpoint_url,
            ),
        )
