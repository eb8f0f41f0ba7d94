"""The three Runtime services: device, executor, broker (``runtime.service.*``)."""
