"""The live operations board: websocket stream, per-process hub, and the page."""
