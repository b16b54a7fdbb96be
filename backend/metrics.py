"""Prometheus metrics of one Pulse server, in a registry of its own (tests build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The counters, gauges and histograms Pulse exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_accepted = Counter(
            "pulse_events_accepted", "Tracking events stored and acknowledged.", registry=r)
        self.events_dropped = Counter(
            "pulse_events_dropped", "Tracking events not stored, by reason.", ["reason"],
            registry=r)
        self.batch_size = Histogram(
            "pulse_writer_batch_size", "Events per committed writer batch.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000), registry=r)
        self.commit_seconds = Histogram(
            "pulse_writer_commit_seconds", "Time to insert and commit one batch.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r)
        self.live_connections = Gauge(
            "pulse_live_connections", "Open SSE live streams per website.", ["website_id"],
            registry=r)
        self.sse_frames = Counter(
            "pulse_sse_frames_sent", "SSE frames written to live streams, by type.", ["type"],
            registry=r)
        self.sse_disconnects = Counter(
            "pulse_sse_disconnects", "SSE streams closed, by reason.", ["reason"], registry=r)
        self.sse_connection_seconds = Histogram(
            "pulse_sse_connection_seconds", "How long SSE live streams stayed open.",
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600), registry=r)
        self.hub_listeners = Gauge(
            "pulse_hub_listeners", "In-process and SSE listeners subscribed to the hub.",
            registry=r)
        self.hub_refills = Gauge(
            "pulse_hub_refills", "Times since start the hub read events a publish had lost "
            "(a gap, or a website behind its committed sequence) from the store.", registry=r)
        self.hub_replay_bytes = Gauge(
            "pulse_hub_replay_bytes", "Bytes held by the replay buffers of all websites.",
            registry=r)
