"""Start the agent runtime kernel: `python -m catty_jupyter.runtime -f CONNECTION_FILE`."""

from __future__ import annotations

import sys

# jsonschema (pulled in by claude-agent-sdk) builds an IRI grammar at import when rfc3987-syntax
# is installed: about a second of every session start, for a format check the runtime never
# makes. Marking it absent makes jsonschema skip that check.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from ipykernel.kernelapp import IPKernelApp  # noqa: E402

from .kernel import CattyRuntimeKernel  # noqa: E402

if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=CattyRuntimeKernel)
