"""`/metrics` on the worker's web port: the pipeline's metrics and Faust's own sensors, one endpoint."""

from __future__ import annotations

from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import REGISTRY

from caves_faust.app import app

setup_prometheus_sensors(app, pattern="/metrics", registry=REGISTRY, name_prefix="faust")
