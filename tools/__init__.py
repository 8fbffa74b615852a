"""tooldag's built-in tool packs, installed as ``tooldag.packs``: one module per pack."""

__all__: list[str] = []
