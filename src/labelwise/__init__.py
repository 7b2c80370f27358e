"""labelwise: a self-hosted data engine for computer vision.

The Python API mirrors the CLI::

    import labelwise

    ws = labelwise.init("my-workspace")            # labelwise init my-workspace
    ws.import_dataset("coco", "annotations.json", images="images/", dataset="street")
    ws.export_dataset("street", "coco", "out/")    # labelwise export street coco out/
"""

from labelwise.errors import LabelwiseError
from labelwise.workspace import Workspace, init, open_workspace

__version__ = "0.1.0"

__all__ = ["LabelwiseError", "Workspace", "init", "open_workspace", "__version__"]
