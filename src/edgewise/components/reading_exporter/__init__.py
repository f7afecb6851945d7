"""The stream-exporting component (``edgewise.sim.ReadingExporter``): the sensor hub's local readings appended to
a stream-manager stream that the stream manager exports to the cloud's telemetry.
``python -m edgewise.components.reading_exporter --help`` lists its options."""
