"""The simulated sensor hub component (``edgewise.sim.SensorHub``): readings with labelled faults, published
locally and to the cloud. ``python -m edgewise.components.sensor_hub --help`` lists its options."""
