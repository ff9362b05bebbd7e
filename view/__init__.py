"""The live web view of a running graph: `car view`, `car launch FILE --view` (view.command, view.launch).

It joins the graph as a subscriber (view.feeds), serves a page over HTTP and WebSocket
(view.server, `websockets`), draws plots with uPlot (shipped in view/static) and drives
the car from the page (view.teleop). It knows the smart car's messages; `car` itself
knows nothing of it.
"""
