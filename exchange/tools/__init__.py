"""Tools that build whole networks on one machine: ``provision`` (keys, manifest, settings,
databases, small GeoIP files) and ``demo`` (a four-node federation run end to end)."""
