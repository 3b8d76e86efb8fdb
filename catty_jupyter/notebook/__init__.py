"""The notebook surface: `%catty` magics and the ipywidgets panels they show.

Everything here runs in the user's own notebook kernel and talks to the Jupyter server through
the one Python client (`catty_jupyter.client`); nothing here runs in the server.
"""
