"""territoire edge agent: reads field devices, buffers durably, publishes over MQTT."""
