"""Image and object embeddings: models by name on ONNX Runtime, a batch pipeline, a cache.

Example::

    import labelwise
    from labelwise.embeddings import embed_dataset, load_embeddings

    ws = labelwise.open_workspace("my-ws")
    embed_dataset(ws, "street", model="efficientnet-lite0", size=224)
    asset_ids, X = load_embeddings(ws, "street", model="efficientnet-lite0", size=224)
"""

from labelwise.embeddings.backbones import (
    BUILTIN,
    EmbeddingModel,
    OnnxEmbedder,
    get_model,
    list_models,
    register_onnx_model,
)
from labelwise.embeddings.pipeline import EmbedFailure, EmbedReport, embed_dataset
from labelwise.embeddings.store import (
    drop_embeddings,
    load_embeddings,
    load_object_embeddings,
)

__all__ = [
    "BUILTIN",
    "EmbedFailure",
    "EmbedReport",
    "EmbeddingModel",
    "OnnxEmbedder",
    "drop_embeddings",
    "embed_dataset",
    "get_model",
    "list_models",
    "load_embeddings",
    "load_object_embeddings",
    "register_onnx_model",
]
