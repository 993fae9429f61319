"""Post data: the schema, readers and writers, and the `prepare` pipeline."""
