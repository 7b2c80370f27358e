"""Dataset formats and the import/export services.

One module per format (``coco``, ``yolo``, ``voc``, ``csv``, ``folder``) with pure converters
inside and ``read_*``/``write_*`` at the edges; ``importer`` and ``exporter`` move drafts in and
out of a workspace; ``formats`` is the registry the CLI and API pick from by name.
"""
