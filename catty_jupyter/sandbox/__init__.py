"""How a session's process tree is confined: bubblewrap, the provisioner, capability checks."""
