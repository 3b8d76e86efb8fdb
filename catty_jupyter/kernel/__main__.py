"""Start the Catty kernel: `python -m catty_jupyter.kernel -f CONNECTION_FILE`."""

from __future__ import annotations

from ipykernel.kernelapp import IPKernelApp

from .kernel import CattyKernel

if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=CattyKernel)
