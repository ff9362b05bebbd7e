"""Operator: send on every value it gets, with its metadata (the stamp goes on)."""

from dora import DoraStatus


class Operator:
    """The benchmark's relay, as an operator."""

    def on_event(self, event, send_output):
        if event["type"] == "INPUT":
            send_output("data", event["value"], {"t": event["metadata"]["t"]})
        return DoraStatus.CONTINUE
