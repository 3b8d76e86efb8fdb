"""Start the agent runtime kernel: `python -m catty_jupyter.runtime -f CONNECTION_FILE`."""

from __future__ import annotations

from ipykernel.kernelapp import IPKernelApp

from .kernel import CattyRuntimeKernel

if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=CattyRuntimeKernel)
