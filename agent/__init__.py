"""The schoolmon agent: probes, scheduler, on-disk spool and MQTT publisher."""
