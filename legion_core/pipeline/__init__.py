"""The inference pipeline (see `legion_core.pipeline.pipeline` and docs/pipeline.md)."""
