"""What every body the bridge reads is checked with: strict JSON, the shared field types, and
pydantic's errors turned into ours (``missing_field``, ``invalid_field``, …); how its answers
write a time (``times``); the OpenAPI document's building blocks and its merge
(``openapi``). Pure."""
