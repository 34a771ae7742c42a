"""The model zoo: named checkpoints built from recipes, and Brain-Score plugin generation.

Public API::

    from model_zoo import ZOO, BuildConfig, build_entry, ensure_weights, PluginConfig, write_plugin
"""

from nmnc._lazy import exports

__getattr__, __all__ = exports(
    __name__,
    {
        "registry": [
            "ZOO",
            "ZooEntry",
            "get",
            "identifier",
            "list_lines",
            "weights",
            "zoo_dir",
        ],
        "build": ["BuildConfig", "ZooRecord", "build_entry", "ensure_weights", "train_config"],
        "plugin": ["PluginConfig", "write_plugin"],
    },
)
