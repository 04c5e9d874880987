"""member sightings: the hash index keyed by (hash, member); receivers' own GeoIP check

Each member's sighting of a hash is its own row, so an announcement can only add or update the
announcer's row; the first sighting in the network is derived from all rows. Received reports
record this node's own placement of the sender's addresses (``geo_country``), whether it agrees
with the sender (``geo_agrees``) and the member it would route to instead (``reroute_to``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows already hold one sighting per hash, each under its own member: they stay.
    with op.batch_alter_table("hash_index", recreate="always") as batch:
        batch.drop_constraint("pk_hash_index", type_="primary")
        batch.create_primary_key("pk_hash_index", ["algorithm", "hex", "member"])
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("geo_country", sa.String(2), nullable=True))
        batch.add_column(sa.Column("geo_agrees", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("reroute_to", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("reroute_to")
        batch.drop_column("geo_agrees")
        batch.drop_column("geo_country")
    # Keep the earliest sighting per hash, as the single-row index did.
    op.execute(
        "DELETE FROM hash_index WHERE EXISTS (SELECT 1 FROM hash_index AS e "
        "WHERE e.algorithm = hash_index.algorithm AND e.hex = hash_index.hex "
        "AND (e.first_seen < hash_index.first_seen OR "
        "(e.first_seen = hash_index.first_seen AND e.member < hash_index.member)))"
    )
    with op.batch_alter_table("hash_index", recreate="always") as batch:
        batch.drop_constraint("pk_hash_index", type_="primary")
        batch.create_primary_key("pk_hash_index", ["algorithm", "hex"])
