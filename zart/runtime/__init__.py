"""The durable runtime: decorators, context, replay."""
