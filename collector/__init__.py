"""The schoolmon collector: MQTT subscriber, validation, InfluxDB storage, rules and alerts."""
