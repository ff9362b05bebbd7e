"""Recording runs into MCAP files and playing them back: the sink, the channels, the recorder and player nodes."""
