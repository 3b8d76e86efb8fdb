"""The agent runtime: a Jupyter kernel that runs inside the sandbox and hosts one agent."""
