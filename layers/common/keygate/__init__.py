"""KeyGate's shared domain package (the `common` Lambda layer).

What lives where is mapped in docs/architecture.md ("Where things live").
"""
