"""The domain core: sessions, labels, the store, transcripts, workspaces. Knows nothing of Jupyter."""
