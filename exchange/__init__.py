"""Exchange: the ihx node — domain model, storage, gRPC services, outbox sender, dedup, CLI."""
