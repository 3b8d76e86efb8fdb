"""The jupyter-server extension: the session manager, REST and WebSocket handlers."""
